#!/bin/sh
# Build the amazon-ecs-init RPM into OUTDIR.
#
# usage: packaging/build-rpm.sh OUTDIR [rpmbuild options...]
#   e.g. packaging/build-rpm.sh out                          # generic, systemd
#        packaging/build-rpm.sh out --define 'amzn 2023'     # Amazon Linux 2023
#        packaging/build-rpm.sh out --define 'amzn 2'        # Amazon Linux 2
#        packaging/build-rpm.sh out --with upstart           # upstart job (AL1 style)
# needs: rpmbuild (Debian: apt-get install rpm), python3, busybox-static.
# No --nodeps: the spec declares BuildRequires only on RPM distributions.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-rpm.sh OUTDIR [rpmbuild options...]}
shift
command -v rpmbuild >/dev/null || {
    echo "build-rpm: rpmbuild is missing (Debian: apt-get install rpm)" >&2; exit 1; }
spec=$here/rpm/amazon-ecs-init.spec
version=$(awk '/^Version:/ {print $2; exit}' "$spec")
top=$(mktemp -d "${TMPDIR:-/tmp}/ecs-rpm.XXXXXX")
trap 'rm -rf "$top"' EXIT
mkdir -p "$top/SOURCES" "$top/SPECS" "$top/BUILD" "$top/RPMS" "$top/SRPMS" "$out"
"$here/stage-source.sh" "$top/stage/amazon-ecs-init-$version"
tar -C "$top/stage" -czf "$top/SOURCES/amazon-ecs-init-$version.tar.gz" "amazon-ecs-init-$version"
cp "$spec" "$top/SPECS/"
rpmbuild -bb --define "_topdir $top" "$@" "$top/SPECS/amazon-ecs-init.spec" >"$top/rpmbuild.log" 2>&1 || {
    tail -40 "$top/rpmbuild.log" >&2; echo "build-rpm: rpmbuild failed" >&2; exit 1; }
for f in "$top"/RPMS/*/*.rpm; do cp "$f" "$out/"; echo "build-rpm: wrote $out/$(basename "$f")" >&2; done
