"""The host facts of a support bundle: rules, sysctls, routes, OS, kernel, cgroups, disk, systemd.

Each external command runs through the one command adapter with a short
timeout; a missing tool or a failing command is an item with ``error``
(a manifest line), never a failed bundle.
"""

from __future__ import annotations

import json
import os
from typing import Any, Optional, Sequence

from ecs_init.core.errors import CommandError
from ecs_init.core.platform import read_platform
from ecs_init.host.context import HostContext
from ecs_init.ops.collect_sources import Item, as_json, failed, read_file

COMMAND_TIMEOUT = 10.0
JOURNAL_LINES = 500
UNIT = "ecs"
SYSTEMD_RUNTIME = "/run/systemd/system"  # exists when systemd is the init system (sd_booted)
MOUNTINFO = "/proc/self/mountinfo"
# The sysctls this program sets or restores (SPEC §6), and the one Docker's bridge needs.
SYSCTLS = (
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.conf.default.route_localnet",
    "net.ipv6.conf.docker0.accept_ra",
    "net.ipv4.ip_forward",
)


def command_item(ctx: HostContext, name: str, argv: Sequence[str], ok_codes: Sequence[int] = (0,)) -> Item:
    source = " ".join(argv)
    try:
        proc = ctx.runner.run(list(argv), check=False, timeout=COMMAND_TIMEOUT)
    except CommandError as err:
        return failed(name, source, str(err))
    if proc.returncode not in ok_codes:
        output = (proc.stderr or proc.stdout or "").strip().splitlines()
        return failed(name, source, f"exit {proc.returncode}" + (f": {output[0]}" if output else ""))
    return Item(name, source, (proc.stdout or "").encode("utf-8"))


def sysctl_item() -> Item:
    lines = []
    for key in SYSCTLS:
        path = "/proc/sys/" + key.replace(".", "/")
        data, why = read_file(path, 256)
        lines.append(f"{key} = {data.decode('ascii', errors='replace').strip()}" if data is not None
                     else f"{key}: {why}")  # fmt: skip
    return Item("host/sysctl.txt", "/proc/sys", ("\n".join(lines) + "\n").encode("utf-8"))


def kernel_item() -> Item:
    uname = os.uname()
    lines = [f"{uname.sysname} {uname.nodename} {uname.release} {uname.version} {uname.machine}"]
    data, _ = read_file("/proc/version", 4096)
    if data:
        lines.append(data.decode("utf-8", errors="replace").strip())
    return Item("host/kernel.txt", "uname, /proc/version", ("\n".join(lines) + "\n").encode("utf-8"))


def cgroup_mode(mountinfo: str, unified_is_cgroup2: bool = False) -> str:
    """ "v2 (unified)", "v1 (hybrid: ...)", "v1 (legacy)" or "unknown" from /proc/self/mountinfo text."""
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 10 or fields[4] != "/sys/fs/cgroup" or "-" not in fields:
            continue
        fstype = fields[fields.index("-") + 1]
        if fstype == "cgroup2":
            return "v2 (unified)"
        if fstype == "tmpfs":
            return "v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)" if unified_is_cgroup2 else "v1 (legacy)"
        return f"unknown ({fstype} at /sys/fs/cgroup)"
    return "unknown (nothing mounted at /sys/fs/cgroup)"


def cgroup_item(ctx: HostContext) -> Item:
    data, why = read_file(MOUNTINFO, 1024 * 1024)
    if data is None:
        return failed("host/cgroup.txt", MOUNTINFO, why)
    text = data.decode("utf-8", errors="replace")
    unified = any(
        line.split()[4] == "/sys/fs/cgroup/unified" and " - cgroup2 " in line
        for line in text.splitlines()
        if len(line.split()) > 4
    )
    platform = read_platform(ctx.paths)
    lines = [
        f"mode: {cgroup_mode(text, unified)}",
        f"agent binds: {platform.cgroup_mountpoint} (platform {platform.family})",
        "",
        *[line for line in text.splitlines() if "cgroup" in line],
    ]
    return Item("host/cgroup.txt", MOUNTINFO, ("\n".join(lines) + "\n").encode("utf-8"))


def _free(path: str) -> dict[str, Any]:
    try:
        st = os.statvfs(path)
    except OSError as err:
        return {"error": str(err.strerror or err)}
    return {"free_bytes": st.f_bavail * st.f_frsize, "total_bytes": st.f_blocks * st.f_frsize}


def disk_item(ctx: HostContext, docker_root: Optional[str]) -> Item:
    paths = ctx.paths
    wanted = {
        "log dir": paths.log_dir,
        "cache dir": paths.cache_dir,
        "data dir": paths.data_dir,
        "instance config dir": paths.instance_config_dir,
        "Docker root dir": docker_root or "/var/lib/docker",
        "root": "/",
    }
    doc = {label: {"path": path, **_free(path)} for label, path in wanted.items()}
    return Item("host/disk.json", "statvfs", as_json(doc))


def systemd_items(ctx: HostContext) -> list[Item]:
    if not os.path.isdir(SYSTEMD_RUNTIME):
        why = "systemd is not the init system here"
        return [Item("host/systemctl-status.txt", f"systemctl status {UNIT}", skipped=why),
                Item("host/journal.txt", f"journalctl -u {UNIT}", skipped=why)]  # fmt: skip
    return [
        # systemctl status exits 3 for a stopped unit and 4 for an unknown one: still worth reading
        command_item(
            ctx, "host/systemctl-status.txt", ["systemctl", "status", UNIT, "--no-pager", "--full"], ok_codes=(0, 3, 4)
        ),  # fmt: skip
        command_item(
            ctx,
            "host/journal.txt",
            ["journalctl", "-u", UNIT, "--no-pager", "-o", "short-iso", "-n", str(JOURNAL_LINES)],
        ),  # fmt: skip
    ]


def host_items(ctx: HostContext, docker_root: Optional[str] = None) -> list[Item]:
    items = [
        command_item(ctx, "host/iptables-save.txt", ["iptables-save"]),
        command_item(ctx, "host/ip6tables-save.txt", ["ip6tables-save"]),
        sysctl_item(),
        command_item(ctx, "host/ip-route.txt", ["ip", "route", "show", "table", "all"]),
        command_item(ctx, "host/ip-6-route.txt", ["ip", "-6", "route", "show", "table", "all"]),
        kernel_item(),
        cgroup_item(ctx),
        disk_item(ctx, docker_root),
    ]
    data, why = read_file(ctx.paths.os_release, 64 * 1024, follow=True)  # a symlink to /usr/lib/os-release
    items.insert(5, Item("host/os-release", ctx.paths.os_release, data) if data is not None
                 else failed("host/os-release", ctx.paths.os_release, why))  # fmt: skip
    items += systemd_items(ctx)
    return items


def docker_root_of(items: list[Item]) -> Optional[str]:
    """DockerRootDir from the collected ``docker info``, if it was collected."""
    for item in items:
        if item.name == "docker/info.json" and item.data:
            try:
                root = json.loads(item.data).get("DockerRootDir")
            except (ValueError, AttributeError):
                return None
            return str(root) if root else None
    return None
