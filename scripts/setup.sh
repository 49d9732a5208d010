#!/usr/bin/env bash
# Shared set-up for ./scripts/test and ./scripts/demo, sourced by both.
# Installs the system packages (Debian), creates the virtualenv, starts dockerd
# when no daemon answers. Safe to run again: each step is skipped when done.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${ECS_INIT_VENV:-$REPO/.venv}"

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "this must run as root (it installs packages, starts dockerd and uses network namespaces)" >&2
    exit 1
  fi
}

install_system_packages() {
  # binary:package pairs; install everything when any is missing
  local wanted="dockerd:docker.io iptables:iptables ip6tables:iptables busybox:busybox-static ip:iproute2 sysctl:procps
    rpmbuild:rpm dpkg-buildpackage:dpkg-dev dh:debhelper fakeroot:fakeroot apparmor_parser:apparmor
    systemd-analyze:systemd nroff:groff-base rpm2archive:rpm python3:python3 curl:curl mount:mount
    make:make mmdebstrap:mmdebstrap"
  local missing="" pair bin pkg
  for pair in $wanted; do
    bin="${pair%%:*}"; pkg="${pair#*:}"
    command -v "$bin" >/dev/null 2>&1 || missing="$missing $pkg"
  done
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$missing python3-venv"
  if [ -n "$missing" ]; then
    echo "== installing system packages:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing python3-venv >/dev/null
  fi
}

create_venv() {
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import ecs_init, docker, pytest, moto, hypothesis, jsonschema' >/dev/null 2>&1; then
    echo "== creating virtualenv $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q -e "$REPO[test]"
  fi
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then
    return 0
  fi
  echo "== starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/ecs-init-test-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "dockerd did not come up; its log:" >&2
  tail -n 30 /var/log/ecs-init-test-dockerd.log >&2 || true
  exit 1
}

setup_all() {
  need_root
  install_system_packages
  create_venv
  start_dockerd
}
