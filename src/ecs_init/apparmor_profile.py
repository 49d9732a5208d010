"""The agent's AppArmor profile text (SPEC §8). Pure: no file or host access.

The rules, in words:

- allow: network inet/inet6/netlink/unix, every capability, every file
  operation, umount, signals received from unconfined processes and
  exchanged within the profile, D-Bus on the system bus, ptrace within the
  profile and with ``docker-default``;
- deny: writes to files directly in /proc and to /proc subdirectories other
  than the numeric per-process ones and ``sys``; writes to /proc/sys except
  /proc/sys/kernel/shm*; any access to /proc/sysrq-trigger and /proc/kcore;
  mount; writes under /sys except below /sys/fs/cgroup; any access to
  /sys/firmware and /sys/kernel/security.

Paths are spelt out (``/proc`` rather than ``@{PROC}``) so the profile parses
whether or not ``tunables/global`` is included.
"""

from __future__ import annotations

import re

# What the file name under /etc/apparmor.d and the profile name may be: no
# path separators, no whitespace, nothing the policy language would read as
# syntax.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,254}$")

TUNABLES_INCLUDE = "tunables/global"
ABSTRACTIONS_INCLUDE = "abstractions/base"
DOCKER_DEFAULT_PROFILE = "docker-default"


def valid_name(name: str) -> bool:
    """True when ``name`` is safe as both a profile name and a file name."""
    return bool(_NAME_RE.match(name)) and name not in (".", "..")


def render(name: str, include_tunables: bool, include_abstractions: bool) -> str:
    """The profile for ``name``; raises ValueError for an unsafe name."""
    if not valid_name(name):
        raise ValueError(f"invalid AppArmor profile name {name!r}")
    head: list[str] = ["# Written by amazon-ecs-init for the ECS agent container. Changes are overwritten."]
    if include_tunables:
        head.append(f"#include <{TUNABLES_INCLUDE}>")
    body: list[str] = []
    if include_abstractions:
        body.append(f"#include <{ABSTRACTIONS_INCLUDE}>")
        body.append("")
    body += [
        "# networking the agent needs (task ENIs, metadata, the Docker socket)",
        "network inet,",
        "network inet6,",
        "network netlink,",
        "network unix,",
        "",
        "capability,",
        "file,",
        "umount,",
        "",
        "# signals: from unconfined processes, and among processes of this profile",
        "signal (receive) peer=unconfined,",
        f"signal (send, receive) peer={name},",
        "",
        "dbus (send, receive) bus=system,",
        "",
        "# ptrace only within this profile and with the default container profile",
        f"ptrace (trace, read, tracedby, readby) peer={name},",
        f"ptrace (trace, read, tracedby, readby) peer={DOCKER_DEFAULT_PROFILE},",
        "",
        "# /proc: no writes outside the per-process directories and /proc/sys",
        "deny /proc/* w,",
        "deny /proc/{[^0-9s]*,s[^y]*,sy[^s]*,sys?*,s,sy}/** w,",
        "# /proc/sys: read-only, except the System V shared memory knobs",
        "deny /proc/sys/{[^k]**,k[^e]**,ke[^r]**,ker[^n]**,kern[^e]**,kerne[^l]**,kernel?**} w,",
        "deny /proc/sys/kernel/{[^s]**,s[^h]**,sh[^m]**} w,",
        "deny /proc/sysrq-trigger mrwklx,",
        "deny /proc/kcore mrwklx,",
        "",
        "deny mount,",
        "",
        "# /sys: read-only except the cgroup hierarchy",
        "deny /sys/{[^f]*,f[^s]*,fs?*}/** wkl,",
        "deny /sys/fs/{[^c]*,c[^g]*,cg[^r]*,cgr[^o]*,cgro[^u]*,cgrou[^p]*,cgroup?*}/** wkl,",
        "deny /sys/firmware/** mrwklx,",
        "deny /sys/kernel/security/** mrwklx,",
    ]
    lines = head + ["", f"profile {name} flags=(attach_disconnected,mediate_deleted) {{"]
    lines += [("  " + line) if line else "" for line in body]
    lines.append("}")
    return "\n".join(lines) + "\n"
