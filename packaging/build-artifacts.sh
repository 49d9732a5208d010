#!/bin/sh
# Build what the packages install, into BUILDDIR (used by debian/rules and
# the RPM spec's %build; runnable by hand):
#   amazon-ecs-init            zipapp, entry ecs_init.cli:run
#   amazon-ecs-volume-plugin   zipapp, entry ecs_init.volume_plugin.server:main
#                              (only when src/ecs_init/volume_plugin/server.py exists)
#   version, agent-version     the program's version and the agent version it is
#                              built for (from src/ecs_init/__init__.py)
# The agent tarball is not built here: packages take it from AGENT_TARBALL
# (packaging/install-tree.sh).
#
# usage: packaging/build-artifacts.sh BUILDDIR
# env:   ECS_PYTHON   shebang interpreter of the zipapps (default /usr/bin/python3)
#        PYTHON       Python that runs the build (default python3)
#        ECS_DEPS_DIR vendored nvidia-ml-py to bundle (default: vendor/ beside
#                     src/ when present, else pip install --target)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
out=${1:?usage: build-artifacts.sh BUILDDIR}
py=${PYTHON:-python3}
interp="${ECS_PYTHON:-/usr/bin/python3} -I"
deps=${ECS_DEPS_DIR:-$top/vendor}
mkdir -p "$out"

"$py" "$here/build-zipapp.py" "$out/amazon-ecs-init" --interpreter "$interp" \
    --source "$top/src/ecs_init" --deps-cache "$deps"
if [ -f "$top/src/ecs_init/volume_plugin/server.py" ]; then
    "$py" "$here/build-zipapp.py" "$out/amazon-ecs-volume-plugin" --interpreter "$interp" \
        --source "$top/src/ecs_init" --deps-cache "$deps" --entry ecs_init.volume_plugin.server:main
fi
"$py" - "$top/src" "$out" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[1])
import ecs_init
for name, value in (("version", ecs_init.__version__), ("agent-version", ecs_init.AGENT_VERSION)):
    with open(os.path.join(sys.argv[2], name), "w") as fh:
        fh.write(value + "\n")
PY
echo "build-artifacts: $(ls "$out" | tr '\n' ' ')in $out" >&2
