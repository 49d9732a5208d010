#!/bin/sh
# Lay out the installed file tree of the package in DESTDIR (one source of
# truth for the RPM's %install and debian/rules).
#
# usage: packaging/install-tree.sh BUILDDIR DESTDIR FLAVOUR
#   BUILDDIR  output of packaging/build-artifacts.sh
#   FLAVOUR   systemd:UNITDIR (e.g. systemd:/usr/lib/systemd/system) or upstart
# env:  AGENT_VERSION  version of the bundled agent (default v1.105.1)
#
# Configuration files /etc/ecs/ecs.config and ecs.config.json are NOT laid
# out: they are ghosts created empty by the post-install scriptlet if absent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: install-tree.sh BUILDDIR DESTDIR FLAVOUR}
dest=${2:?usage: install-tree.sh BUILDDIR DESTDIR FLAVOUR}
flavour=${3:?usage: install-tree.sh BUILDDIR DESTDIR FLAVOUR}
agent=${AGENT_VERSION:-v1.105.1}

install -d -m 0755 "$dest/usr/libexec" "$dest/usr/bin" "$dest/usr/share/man/man1" "$dest/etc/ecs" \
    "$dest/var/lib/ecs" "$dest/var/log/ecs"
install -d -m 0700 "$dest/var/lib/ecs/data" "$dest/var/cache/ecs"
install -m 0755 "$build/amazon-ecs-init" "$dest/usr/libexec/amazon-ecs-init"
ln -sf ../libexec/amazon-ecs-init "$dest/usr/bin/amazon-ecs-init"
install -m 0644 "$here/man/amazon-ecs-init.1" "$dest/usr/share/man/man1/amazon-ecs-init.1"
if [ -f "$build/amazon-ecs-volume-plugin" ]; then
    install -m 0755 "$build/amazon-ecs-volume-plugin" "$dest/usr/libexec/amazon-ecs-volume-plugin"
fi

# Bundled agent: versioned tarball, ecs-agent.tar linking to it, state 2
# (reload needed) so pre-start loads it over whatever Docker has.
install -m 0644 "$build/ecs-agent.tar" "$dest/var/cache/ecs/ecs-agent-$agent.tar"
ln -sf "ecs-agent-$agent.tar" "$dest/var/cache/ecs/ecs-agent.tar"
printf '2\n' > "$dest/var/cache/ecs/state"
chmod 0644 "$dest/var/cache/ecs/state"

case $flavour in
systemd:*)
    unitdir=${flavour#systemd:}
    install -d -m 0755 "$dest$unitdir" "$dest/usr/share/amazon-ecs-init"
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
