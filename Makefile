# Developer entry points. Every target that needs root, Docker or system
# packages sets them up itself through scripts/setup.sh.
#
# Packages: `make rpm` / `make deb` build into $(OUT) without an agent image
# (the first start downloads it); `make rpm AGENT_TARBALL=/path/ecs-agent-v1.105.1.tar`
# (likewise deb) bundles that `docker save` archive of amazon/amazon-ecs-agent,
# checked first (image tag and architecture). One tarball per architecture.
.PHONY: get-deps test lint mutation demo standin bench rpm deb zipapp clean

OUT ?= out
AGENT_TARBALL ?=

get-deps:            ## system packages, virtualenv, dockerd
	bash -c 'source scripts/setup.sh && setup_all'

test:                ## the whole test suite (installs and starts what it needs)
	./scripts/test

lint:                ## ruff + mypy
	./scripts/lint

mutation:            ## mutation score of the pure modules (slow benchmark, not part of test)
	./scripts/mutation

demo:                ## bring up the supervised stand-in agent in a namespace and show /v1/metadata
	./scripts/demo

standin:             ## build the stand-in agent tarballs into $(OUT)/standin (tests and demo only)
	python3 standin/build.py $(OUT)/standin

bench:               ## benchmark figures (core, download, resilience)
	.venv/bin/python benchmarks/core.py
	.venv/bin/python benchmarks/download_rss.py
	.venv/bin/python benchmarks/resilience.py

zipapp:              ## the two programs (zip applications) into $(OUT)
	mkdir -p $(OUT) && python3 packaging/build-zipapp.py $(OUT)/amazon-ecs-init
	python3 packaging/build-zipapp.py $(OUT)/amazon-ecs-volume-plugin --entry ecs_init.volume_plugin.server:main

rpm:                 ## RPM package into $(OUT) [AGENT_TARBALL=path]
	AGENT_TARBALL="$(AGENT_TARBALL)" packaging/build-rpm.sh $(OUT)

deb:                 ## Debian package into $(OUT) [AGENT_TARBALL=path]
	AGENT_TARBALL="$(AGENT_TARBALL)" packaging/build-deb.sh $(OUT)

clean:
	rm -rf $(OUT) build dist src/*.egg-info src/ecs_init/_build_info.py
