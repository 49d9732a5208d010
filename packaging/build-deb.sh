#!/bin/sh
# Build the amazon-ecs-init Debian package into OUTDIR.
#
# usage: [AGENT_TARBALL=PATH] packaging/build-deb.sh OUTDIR
#   (`make deb [AGENT_TARBALL=PATH]` runs this.)
# AGENT_TARBALL: the ECS agent image to bundle, a `docker save` archive of
#   amazon/amazon-ecs-agent:latest for this package's architecture (checked
#   first by packaging/check-agent-tarball.py). Without it the package bundles
#   no agent and pre-start downloads it on the first start.
# needs: dpkg-dev, debhelper (>= 13), fakeroot, python3
#        (Debian: apt-get install dpkg-dev debhelper fakeroot).
# The build runs in a staged copy of the source tree: nothing is written into
# the working tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-deb.sh OUTDIR}
for tool in dpkg-buildpackage dh fakeroot; do
    command -v "$tool" >/dev/null || {
        echo "build-deb: $tool is missing (apt-get install dpkg-dev debhelper fakeroot)" >&2; exit 1; }
done
agent_tarball=${AGENT_TARBALL:-}
if [ -n "$agent_tarball" ]; then
    python3 "$here/check-agent-tarball.py" --arch "$(dpkg-architecture -qDEB_HOST_ARCH)" "$agent_tarball" \
        >/dev/null || { echo "build-deb: AGENT_TARBALL is not usable (see above)" >&2; exit 1; }
    agent_tarball=$(cd "$(dirname "$agent_tarball")" && pwd)/$(basename "$agent_tarball")
fi
version=$(dpkg-parsechangelog -l "$here/../debian/changelog" -S Version)
upstream=${version%-*}
top=$(mktemp -d "${TMPDIR:-/tmp}/ecs-deb.XXXXXX")
trap 'rm -rf "$top"' EXIT
mkdir -p "$out"
src=$top/amazon-ecs-init-$upstream
"$here/stage-source.sh" "$src"
(cd "$src" && AGENT_TARBALL="$agent_tarball" dpkg-buildpackage -b -us -uc -rfakeroot) >"$top/build.log" 2>&1 || {
    tail -40 "$top/build.log" >&2; echo "build-deb: dpkg-buildpackage failed" >&2; exit 1; }
for f in "$top"/*.deb; do
    cp "$f" "$out/"
    echo "build-deb: wrote $out/$(basename "$f")" >&2
done
