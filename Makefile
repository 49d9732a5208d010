# Developer entry points. Every target that needs root, Docker or system
# packages sets them up itself through scripts/setup.sh.
.PHONY: get-deps test lint mutation demo standin bench rpm deb zipapp clean

OUT ?= out

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

standin:             ## build the stand-in agent tarballs into $(OUT)/standin
	python3 standin/build.py $(OUT)/standin

bench:               ## benchmark figures (core, download, resilience)
	.venv/bin/python benchmarks/core.py
	.venv/bin/python benchmarks/download_rss.py
	.venv/bin/python benchmarks/resilience.py

zipapp:              ## self-contained /usr/libexec/amazon-ecs-init
	mkdir -p $(OUT) && python3 packaging/build-zipapp.py $(OUT)/amazon-ecs-init

rpm:                 ## RPM package into $(OUT)
	packaging/build-rpm.sh $(OUT)

deb:                 ## Debian package into $(OUT)
	packaging/build-deb.sh $(OUT)

clean:
	rm -rf $(OUT) build dist src/*.egg-info
