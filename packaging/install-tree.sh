#!/bin/sh
# Lay out the installed file tree of the package in DESTDIR (one source of
# truth for the RPM's %install and debian/rules).
#
# usage: packaging/install-tree.sh BUILDDIR DESTDIR FLAVOUR
#   BUILDDIR  output of packaging/build-artifacts.sh
#   FLAVOUR   systemd:UNITDIR (e.g. systemd:/usr/lib/systemd/system) or upstart
# env:  AGENT_TARBALL  the agent image tarball to bundle (checked by the
#                      package build); unset or empty: none is bundled
#
# Each version's programs live under their own name,
#   /usr/libexec/amazon-ecs-init-<version>, /usr/libexec/amazon-ecs-volume-plugin-<version>,
# and the stable paths /usr/libexec/amazon-ecs-init and
# /usr/libexec/amazon-ecs-volume-plugin are symlinks to them (replaced
# atomically by rpm and dpkg on upgrade). With AGENT_TARBALL the tarball is
# /var/cache/ecs/ecs-agent-<agent version>.tar, ecs-agent.tar links to it and
# the cache state is 2 (load it at the next pre-start); without, state 0 (the
# next pre-start downloads the agent).
#
# Configuration files /etc/ecs/ecs.config and ecs.config.json are NOT laid
# out: they are ghosts created empty by the post-install scriptlet if absent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
build=${1:?usage: install-tree.sh BUILDDIR DESTDIR FLAVOUR}
dest=${2:?usage: install-tree.sh BUILDDIR DESTDIR FLAVOUR}
flavour=${3:?usage: install-tree.sh BUILDDIR DESTDIR FLAVOUR}
version=$(cat "$build/version")
agent=$(cat "$build/agent-version")
tarball=${AGENT_TARBALL:-}

install -d -m 0755 "$dest/usr/libexec" "$dest/usr/bin" "$dest/usr/share/man/man1" "$dest/etc/ecs" \
    "$dest/var/lib/ecs" "$dest/var/log/ecs" "$dest/usr/share/amazon-ecs-init/schemas"
install -d -m 0700 "$dest/var/lib/ecs/data" "$dest/var/cache/ecs"
for prog in amazon-ecs-init amazon-ecs-volume-plugin; do
    if [ -f "$build/$prog" ]; then
        install -m 0755 "$build/$prog" "$dest/usr/libexec/$prog-$version"
        ln -sfn "$prog-$version" "$dest/usr/libexec/$prog"
    fi
done
ln -sfn ../libexec/amazon-ecs-init "$dest/usr/bin/amazon-ecs-init"
install -m 0644 "$here/man/amazon-ecs-init.1" "$dest/usr/share/man/man1/amazon-ecs-init.1"
# the JSON schemas of status/check/render --json
install -m 0644 "$top"/src/ecs_init/schemas/*.json "$dest/usr/share/amazon-ecs-init/schemas/"

if [ -n "$tarball" ]; then
    install -m 0644 "$tarball" "$dest/var/cache/ecs/ecs-agent-$agent.tar"
    ln -sfn "ecs-agent-$agent.tar" "$dest/var/cache/ecs/ecs-agent.tar"
    printf '2\n' > "$dest/var/cache/ecs/state"
else
    printf '0\n' > "$dest/var/cache/ecs/state"
fi
chmod 0644 "$dest/var/cache/ecs/state"

case $flavour in
systemd:*)
    unitdir=${flavour#systemd:}
    install -d -m 0755 "$dest$unitdir"
    install -m 0644 "$here/systemd/ecs.service" "$dest$unitdir/ecs.service"
    install -m 0644 "$here/systemd/ecs-notify.service" "$dest/usr/share/amazon-ecs-init/ecs-notify.service"
    for f in amazon-ecs-volume-plugin.service amazon-ecs-volume-plugin.socket; do
        if [ -f "$here/systemd/$f" ]; then install -m 0644 "$here/systemd/$f" "$dest$unitdir/$f"; fi
    done
    ;;
upstart)
    install -d -m 0755 "$dest/etc/init"
    install -m 0644 "$here/upstart/ecs.conf" "$dest/etc/init/ecs.conf"
    if [ -f "$here/upstart/amazon-ecs-volume-plugin.conf" ]; then
        install -m 0644 "$here/upstart/amazon-ecs-volume-plugin.conf" "$dest/etc/init/amazon-ecs-volume-plugin.conf"
    fi
    ;;
*)
    echo "install-tree: unknown flavour $flavour (systemd:UNITDIR or upstart)" >&2
    exit 1
    ;;
esac
