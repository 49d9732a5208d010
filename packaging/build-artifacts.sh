#!/bin/sh
# Build what the packages install, into BUILDDIR (used by debian/rules and
# the RPM spec's %build; runnable by hand):
#   amazon-ecs-init            zipapp, entry ecs_init.cli:main
#   amazon-ecs-volume-plugin   zipapp, entry ecs_init.volume_plugin.server:main
#                              (only when src/ecs_init/volume_plugin/server.py exists)
#   ecs-agent.tar              the bundled agent image (the stand-in, variant v1)
#
# usage: packaging/build-artifacts.sh BUILDDIR
# env:   ECS_PYTHON   shebang interpreter of the zipapps (default /usr/bin/python3)
#        PYTHON       Python that runs the build (default python3)
#        ECS_DEPS_DIR pre-installed dependency tree to bundle (default: vendor/
#                     beside src/ when present, else pip install --target)
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

standin=$(mktemp -d)
trap 'rm -rf "$standin"' EXIT
"$py" "$top/standin/build.py" "$standin" >/dev/null
cp "$standin/ecs-agent-v1.tar" "$out/ecs-agent.tar"
echo "build-artifacts: $(ls "$out" | tr '\n' ' ')in $out" >&2
