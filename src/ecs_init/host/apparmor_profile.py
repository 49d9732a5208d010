"""The agent's AppArmor profile text (SPEC §8). Pure: no file or host access.

pre-start writes exactly one profile, ``ecs-agent-default``; its rules are
SPEC §8's list, rule for rule (the agent is tested under exactly these, the
same rules the Go ecs-init ships). ``ECS_AGENT_APPARMOR_PROFILE`` only picks
the profile the agent container runs under (``container_profile``); a
profile named there is never written or loaded by this program.

The rules, in words: allow networking (inet, inet6, netlink, unix), every
capability, every file operation, umount, signals from unconfined processes
and within the profile, D-Bus on the system bus, ptrace within the profile
and with ``docker-default``; deny writes directly in /proc, in /proc
directories that are neither per-process nor ``sys``, in /proc/sys outside
``/proc/sys/k*`` and in /proc/sys/kernel outside ``shm*`` (as the glob
spells them: short and odd names slip through, as they do in Go); deny any
access to /proc/sysrq-trigger and /proc/kcore; deny mount; deny writes,
locks, links and exec under /sys outside /sys/fs/cg*; deny any access to
/sys/firmware and /sys/kernel/security.
"""

from __future__ import annotations

PROFILE_NAME = "ecs-agent-default"
TUNABLES_INCLUDE = "tunables/global"
ABSTRACTIONS_INCLUDE = "abstractions/base"
# Without tunables/global, @{PROC} is defined by the profile itself.
PROC_DEFINITION = "@{PROC}=/proc/"

# The rules inside the profile block, in SPEC §8's order and spelling.
RULES: tuple[str, ...] = (
    "network inet,",
    "network inet6,",
    "network netlink,",
    "network unix,",
    "capability,",
    "file,",
    "umount,",
    "signal (receive) peer=unconfined,",
    f"signal (send,receive) peer={PROFILE_NAME},",
    "dbus (send,receive) bus=system,",
    "deny @{PROC}/* w,",
    "deny @{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9/]*}/** w,",
    "deny @{PROC}/sys/[^k]** w,",
    "deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,",
    "deny @{PROC}/sysrq-trigger rwklx,",
    "deny @{PROC}/kcore rwklx,",
    "deny mount,",
    "deny /sys/[^f]*/** wklx,",
    "deny /sys/f[^s]*/** wklx,",
    "deny /sys/fs/[^c]*/** wklx,",
    "deny /sys/fs/c[^g]*/** wklx,",
    "deny /sys/fs/cg[^r]*/** wklx,",
    "deny /sys/firmware/** rwklx,",
    "deny /sys/kernel/security/** rwklx,",
    f"ptrace (trace,read,tracedby,readby) peer={PROFILE_NAME},",
    "ptrace (trace,read,tracedby,readby) peer=docker-default,",
)

# A comment above some rules (comments are free; the rules are not).
_COMMENTS = {
    "signal (receive) peer=unconfined,": "host (unconfined) processes may signal the agent",
    "dbus (send,receive) bus=system,": "the agent sends D-Bus messages on the system bus",
    "deny @{PROC}/* w,": "/proc: writes mostly limited to /proc/<pid> (docker-default's globs, as in Go)",
    "deny @{PROC}/sysrq-trigger rwklx,": "no access at all to these",
    "deny /sys/[^f]*/** wklx,": "/sys: no writes, locks, links or exec outside /sys/fs/cg*",
    f"ptrace (trace,read,tracedby,readby) peer={PROFILE_NAME},": "ps and docker ps inside containers",
}


def render(include_tunables: bool, include_abstractions: bool) -> str:
    """The text of ``/etc/apparmor.d/ecs-agent-default``.

    ``include_tunables``/``include_abstractions``: whether
    ``tunables/global`` and ``abstractions/base`` exist under the AppArmor
    directory (an include of a missing file fails the whole load).
    """
    lines = ["# Written by amazon-ecs-init for the ECS agent container (SPEC §8). Changes are overwritten."]
    lines.append(f"#include <{TUNABLES_INCLUDE}>" if include_tunables else PROC_DEFINITION)
    lines += ["", f"profile {PROFILE_NAME} flags=(attach_disconnected,mediate_deleted) {{"]
    if include_abstractions:
        lines += [f"  #include <{ABSTRACTIONS_INCLUDE}>", ""]
    for rule in RULES:
        comment = _COMMENTS.get(rule)
        if comment:
            lines.append(f"  # {comment}")
        lines.append(f"  {rule}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def container_profile(configured: str) -> str:
    """The profile the agent container runs under (``SecurityOpt apparmor:<name>``).

    ``ECS_AGENT_APPARMOR_PROFILE``, or ``ecs-agent-default`` when it is empty
    or only whitespace (as the Go program decides); surrounding whitespace is
    dropped. The one place both pre-start and the container spec ask.
    """
    return configured.strip() or PROFILE_NAME
