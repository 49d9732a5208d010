#!/bin/sh
# Build the amazon-ecs-init RPM into OUTDIR.
#
# usage: [AGENT_TARBALL=PATH] packaging/build-rpm.sh OUTDIR [rpmbuild options...]
#   e.g. packaging/build-rpm.sh out                          # generic, systemd
#        packaging/build-rpm.sh out --define 'amzn 2023'     # Amazon Linux 2023
#        packaging/build-rpm.sh out --with upstart           # upstart job (AL1 style)
#        AGENT_TARBALL=/path/ecs-agent-v1.105.1.tar packaging/build-rpm.sh out
#   (`make rpm [AGENT_TARBALL=PATH]` runs this.)
# AGENT_TARBALL: the ECS agent image to bundle, a `docker save` archive of
#   amazon/amazon-ecs-agent:latest for this package's architecture (checked
#   first by packaging/check-agent-tarball.py). Without it the package bundles
#   no agent and pre-start downloads it on the first start.
# needs: rpmbuild (Debian: apt-get install rpm), python3 >= 3.9.
#
# The spec declares BuildRequires only for RPM distributions (%{amzn},
# %{rhel}, %{fedora}, %{suse_version}); a generic build has none and needs no
# --nodeps. Building such a flavour on a host whose rpm database owns no
# packages (Debian, Ubuntu) cannot satisfy them from rpm's view, so this script
# checks them itself (python3 >= 3.9; systemd-rpm-macros has no Debian
# counterpart and is not needed: the spec spells its scriptlets out) and then
# passes --nodeps.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build-rpm.sh OUTDIR [rpmbuild options...]}
shift
command -v rpmbuild >/dev/null || {
    echo "build-rpm: rpmbuild is missing (Debian: apt-get install rpm)" >&2; exit 1; }
spec=$here/rpm/amazon-ecs-init.spec
version=$(awk '/^Version:/ {print $2; exit}' "$spec")
agent_tarball=${AGENT_TARBALL:-}
if [ -n "$agent_tarball" ]; then
    arch=$(rpmbuild --eval '%{_target_cpu}' "$@" 2>/dev/null || uname -m)
    python3 "$here/check-agent-tarball.py" --arch "$arch" "$agent_tarball" >/dev/null || {
        echo "build-rpm: AGENT_TARBALL is not usable (see above)" >&2; exit 1; }
fi
top=$(mktemp -d "${TMPDIR:-/tmp}/ecs-rpm.XXXXXX")
trap 'rm -rf "$top"' EXIT
mkdir -p "$top/SOURCES" "$top/SPECS" "$top/BUILD" "$top/RPMS" "$top/SRPMS" "$out"
"$here/stage-source.sh" "$top/stage/amazon-ecs-init-$version"
tar -C "$top/stage" -czf "$top/SOURCES/amazon-ecs-init-$version.tar.gz" "amazon-ecs-init-$version"
cp "$spec" "$top/SPECS/"
if [ -n "$agent_tarball" ]; then
    # Source1 of the spec; a hard link when it can be (the tarball is large)
    ln -f "$agent_tarball" "$top/SOURCES/agent-image.tar" 2>/dev/null ||
        cp "$agent_tarball" "$top/SOURCES/agent-image.tar"
    set -- --define "bundle_agent 1" "$@"
fi

nodeps=
if ! rpm -q --quiet rpm 2>/dev/null; then
    breqs=$(rpmspec -q --buildrequires "$@" "$top/SPECS/amazon-ecs-init.spec" 2>/dev/null || true)
    if [ -n "$breqs" ]; then
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 9))' || {
            echo "build-rpm: python3 >= 3.9 is required" >&2; exit 1; }
        echo "build-rpm: the rpm database owns no packages on this host; checked the build requirements" \
             "($(echo $breqs | tr '\n' ' ')) directly and using --nodeps" >&2
        nodeps=--nodeps
    fi
fi
rpmbuild -bb $nodeps --define "_topdir $top" "$@" "$top/SPECS/amazon-ecs-init.spec" \
    >"$top/rpmbuild.log" 2>&1 || {
    tail -40 "$top/rpmbuild.log" >&2; echo "build-rpm: rpmbuild failed" >&2; exit 1; }
for f in "$top"/RPMS/*/*.rpm; do
    cp "$f" "$out/"
    echo "build-rpm: wrote $out/$(basename "$f")" >&2
done
