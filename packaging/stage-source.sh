#!/bin/sh
# Copy the files a package build needs into DESTDIR (a clean source tree, so
# builds never write into the working tree), with the Python dependencies
# vendored under DESTDIR/vendor so the package build itself needs no network.
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
(cd "$top" && tar -cf - --exclude=__pycache__ --exclude='*.pyc' --exclude='*.so' \
    src/ecs_init packaging standin pyproject.toml debian $(ls README* LICENSE* NOTICE* 2>/dev/null)) \
    | (cd "$dest" && tar -xf -)
if [ -n "${ECS_DEPS_DIR:-}" ] && [ -d "$ECS_DEPS_DIR/docker" ]; then
    mkdir -p "$dest/vendor" && cp -a "$ECS_DEPS_DIR/." "$dest/vendor/"
else
    "$py" "$here/build-zipapp.py" /dev/null --deps-only --deps-cache "$dest/vendor"
fi
