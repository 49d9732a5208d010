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
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import ecs_init, pytest, moto, hypothesis, jsonschema' >/dev/null 2>&1; then
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

find_python39() {
  # The oldest Python the program supports (RHEL 9's): the packaging tests run
  # the built zipapp under it. Debian 12 has no python3.9 package; the machine
  # image's pyenv does. Exported for the tests; they skip, saying so, without one.
  local candidate
  for candidate in "${ECS_INIT_PYTHON39:-}" "$(command -v python3.9 || true)" \
      "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python3.9 /usr/bin/python3.9 /usr/local/bin/python3.9; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] &&
        [ "$("$candidate" -c 'import sys; print(sys.version_info[:2] == (3, 9))' 2>/dev/null)" = True ]; then
      export ECS_INIT_PYTHON39="$candidate"
      return 0
    fi
  done
  if apt-cache show python3.9 >/dev/null 2>&1; then
    echo "== installing python3.9"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3.9 >/dev/null &&
      export ECS_INIT_PYTHON39=/usr/bin/python3.9 && return 0
  fi
  echo "== no Python 3.9 found (PATH, pyenv, apt): the zipapp-under-3.9 tests will skip" >&2
}

setup_all() {
  need_root
  install_system_packages
  create_venv
  find_python39
  start_dockerd
}
