#!/bin/sh
# Copy the files a package build needs into DESTDIR (a clean source tree, so
# builds never write into the working tree), with nvidia-ml-py vendored under
# DESTDIR/vendor so the package build itself needs no network, and the git
# revision of this tree recorded in DESTDIR/src/ecs_init/_build_info.py (the
# staged copy has no .git; `amazon-ecs-init version` prints the revision).
#
# usage: packaging/stage-source.sh DESTDIR
# env:   ECS_DEPS_DIR  an already vendored dependency tree to reuse
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
dest=${1:?usage: stage-source.sh DESTDIR}
py=${PYTHON:-python3}
mkdir -p "$dest/src"
# tar pipes keep modes and skip caches and build outputs
(cd "$top" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude='*.so' --exclude=_build_info.py \
    src/ecs_init packaging pyproject.toml debian $(ls README* LICENSE* NOTICE* 2>/dev/null)) \
    | (cd "$dest" && tar -xf -)
"$py" "$top/src/ecs_init/versioninfo.py" write-build-info "$dest/src/ecs_init" "$top" >&2
if [ -n "${ECS_DEPS_DIR:-}" ] && [ -f "$ECS_DEPS_DIR/pynvml.py" ]; then
    mkdir -p "$dest/vendor" && cp -a "$ECS_DEPS_DIR/." "$dest/vendor/"
else
    "$py" "$here/build-zipapp.py" /dev/null --deps-only --deps-cache "$dest/vendor"
fi
