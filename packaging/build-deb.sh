#!/bin/sh
# Build the amazon-ecs-init Debian package into OUTDIR.
#
# usage: packaging/build-deb.sh OUTDIR
# needs: dpkg-dev, debhelper (>= 13), fakeroot, python3, busybox-static
#        (Debian: apt-get install dpkg-dev debhelper fakeroot busybox-static).
# The build runs in a staged copy of the source tree: nothing is written into
# the working tree.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-deb.sh OUTDIR}
for tool in dpkg-buildpackage dh fakeroot; do
    command -v "$tool" >/dev/null || {
        echo "build-deb: $tool is missing (apt-get install dpkg-dev debhelper fakeroot)" >&2; exit 1; }
done
version=$(dpkg-parsechangelog -l "$here/../debian/changelog" -S Version)
upstream=${version%-*}
top=$(mktemp -d "${TMPDIR:-/tmp}/ecs-deb.XXXXXX")
trap 'rm -rf "$top"' EXIT
mkdir -p "$out"
src=$top/amazon-ecs-init-$upstream
"$here/stage-source.sh" "$src"
(cd "$src" && dpkg-buildpackage -b -us -uc -rfakeroot) >"$top/build.log" 2>&1 || {
    tail -40 "$top/build.log" >&2; echo "build-deb: dpkg-buildpackage failed" >&2; exit 1; }
for f in "$top"/*.deb; do
    cp "$f" "$out/"
    echo "build-deb: wrote $out/$(basename "$f")" >&2
done
