"""``amazon-ecs-init collect``: one support bundle with everything needed to tell why an instance misbehaves.

``collect [--output FILE] [--since DURATION] [--json]`` writes a ``.tar.gz``
(mode 0600; default ``/var/log/ecs/ecs-support-<host>-<UTC time>.tar.gz``)
holding, under one top directory:

- ``status.json``, ``check.json``, ``render.json``: what those commands print
  with ``--json``;
- ``config/``: both ecs.config files and ecs.config.json, secret values
  redacted by key;
- ``state/``: the events file, the supervisor's state, the cache state with
  the tarball's size and digests (never the tarball);
- ``docker/``: the Engine's version and info, ``docker inspect`` of the agent
  (Env, labels and log options redacted), its last 2 000 log lines;
- ``host/``: iptables-save, ip6tables-save, the sysctls this program sets,
  routes, os-release, kernel, cgroup mode, free disk, and with systemd the
  unit's status and its last 500 journal lines;
- ``logs/``: ecs-init.log, ecs-agent.log, the volume plugin's log and their
  rotations: records newer than ``--since`` (default 24h), the newest
  10 MiB of each file at most;
- ``manifest.json``: what was collected, what failed and why, what was left
  out.

A missing file, tool or daemon is a manifest line, never a failed bundle.
The whole bundle stays under 50 MB. Every member goes through the secret
redaction (SPEC §11) before it is written. Progress goes to stderr when it
is a terminal; stdout gets the path (last line) or, with ``--json``, the
manifest. Exit 0 when the bundle was written, 255 when it could not be.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import socket
import sys
import time
from typing import IO, Any, Callable, Iterator, Optional, Sequence

from ecs_init import __version__
from ecs_init.core.errors import InitError, UsageError
from ecs_init.core.paths import Paths
from ecs_init.host.context import HostContext
from ecs_init.ops.bundle import DEFAULT_LIMIT, Bundle
from ecs_init.ops.collect_host import docker_root_of, host_items
from ecs_init.ops.collect_redact import scrub
from ecs_init.ops.collect_sources import Item, config_items, docker_items, report_items, state_items
from ecs_init.ops.logsel import log_files, parse_duration, read_tail, select_since
from ecs_init.ops.report import human_bytes, iso, make_parser, write_report

DEFAULT_SINCE = "24h"
MAX_LOG_FILE_BYTES = 10 * 1024 * 1024
LOG_BASES = tuple(os.path.basename(p) for p in (Paths().init_log, Paths().agent_log, Paths().volume_plugin_log))
COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4")
MAX_MANIFEST_ENTRIES = 500


class Progress:
    """``[ 3/9] what`` on one rewritten stderr line, only when stderr is a terminal."""

    def __init__(self, stream: IO[str], total: int) -> None:
        self.stream = stream
        self.total = total
        self.count = 0
        try:
            self.enabled = stream.isatty()
        except (AttributeError, ValueError):
            self.enabled = False

    def step(self, what: str) -> None:
        self.count += 1
        if self.enabled:
            self.stream.write(f"\r\033[K[{self.count:>2}/{self.total}] {what}")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def hostname() -> str:
    name = re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64].strip("._")
    return name or "unknown-host"


def output_path(ctx: HostContext, option: Optional[str], now: float) -> str:
    """``--output`` (a file, or a directory to put the default name in), else the default path."""
    name = f"ecs-support-{hostname()}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}.tar.gz"
    if option:
        return os.path.join(option, name) if os.path.isdir(option) else option
    return os.path.join(ctx.paths.log_dir, name)


def log_items(ctx: HostContext, cutoff: float) -> Iterator[Item]:
    """One item per log file and rotation, newest first, holding only records since ``cutoff``."""
    since = iso(cutoff)
    for base in LOG_BASES:
        for path, mtime in log_files(ctx.paths.log_dir, base):
            name = "logs/" + os.path.basename(path)
            if path.endswith(COMPRESSED):
                yield Item(name, path, skipped="a compressed rotation (not included)")
                continue
            if 0 < mtime < cutoff:
                yield Item(name, path, skipped=f"no records since {since} (last written {iso(mtime)})")
                continue
            try:
                tail = read_tail(path, MAX_LOG_FILE_BYTES)
            except OSError as err:
                why = "is a symlink (not followed)" if err.errno == errno.ELOOP else str(err.strerror or err)
                yield Item(name, path, error=why)
                continue
            data = select_since(tail.data, cutoff, tail.mtime)
            note = (
                f"only the newest {MAX_LOG_FILE_BYTES // (1024 * 1024)} MiB of {tail.size} bytes"
                if tail.truncated
                else ""
            )
            if not data:
                yield Item(name, path, skipped=f"no records since {since}")
                continue
            yield Item(name, path, data, note=note)


def _entry(item: Item, reason: str) -> dict[str, str]:
    return {"name": item.name, "source": item.source, "reason": reason}


class Collector:
    """Writes the items into the bundle (scrubbed, capped) and keeps the manifest."""

    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle
        self.collected: list[dict[str, Any]] = []
        self.failed: list[dict[str, str]] = []
        self.skipped: list[dict[str, str]] = []

    def put(self, item: Item) -> None:
        if item.error:
            self.failed.append(_entry(item, item.error))
            return
        if item.skipped:
            self.skipped.append(_entry(item, item.skipped))
            return
        data = scrub(item.data.decode("utf-8", errors="replace"), by_key=not item.is_json).encode("utf-8")
        stored, cut = self.bundle.add(item.name, data, item.keep_newest)
        if not stored and data:
            self.skipped.append(_entry(item, cut))
            return
        entry: dict[str, Any] = {"name": item.name, "source": item.source, "bytes": stored}
        note = "; ".join(n for n in (item.note, cut) if n)
        if note:
            entry["note"] = note
        self.collected.append(entry)

    def manifest(self, head: dict[str, Any]) -> dict[str, Any]:
        doc = dict(head)
        for key, entries in (("collected", self.collected), ("failed", self.failed), ("skipped", self.skipped)):
            doc[key] = entries[:MAX_MANIFEST_ENTRIES]
            if len(entries) > MAX_MANIFEST_ENTRIES:
                doc[f"{key}_not_listed"] = len(entries) - MAX_MANIFEST_ENTRIES
        return doc


def collect(
    ctx: HostContext, path: str, since_text: str, since_seconds: float, now: float, progress: Progress
) -> dict[str, Any]:
    """Write the bundle at ``path``; return its manifest (plus ``bytes``, its size)."""
    cutoff = now - since_seconds
    root = os.path.basename(path).split(".tar")[0] or "ecs-support"
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        bundle = Bundle(path, root, DEFAULT_LIMIT, now)
    except OSError as err:
        raise InitError(f"cannot write the support bundle {path}: {err.strerror or err}") from err
    started = time.monotonic()
    with bundle:
        collector = Collector(bundle)
        items: list[Item] = []
        # gathered before anything is written, so that every secret they reveal is known to the redaction
        steps: list[tuple[str, Callable[[list[Item]], list[Item]]]] = [
            ("Docker: version, info, the agent container and its logs", lambda done: docker_items(ctx)),
            ("configuration files", lambda done: config_items(ctx)),
            ("status, check and render reports", lambda done: report_items(ctx)),
            ("cache, supervisor and events state", lambda done: state_items(ctx)),
            ("host: rules, routes, OS, cgroups, disk, systemd", lambda done: host_items(ctx, docker_root_of(done))),
        ]
        for what, gather in steps:
            progress.step(what)
            items += gather(items)
        for item in items:
            collector.put(item)
        for item in log_items(ctx, cutoff):
            progress.step(f"log {item.name[5:]}")
            collector.put(item)
        progress.step("manifest")
        head = {
            "bundle": path,
            "created": iso(now),
            "host": hostname(),
            "program_version": __version__,
            "since": since_text,
            "since_time": iso(cutoff),
            "limit_bytes": DEFAULT_LIMIT,
            "duration_seconds": 0.0,
        }
        manifest = collector.manifest(head)
        manifest["duration_seconds"] = round(time.monotonic() - started, 3)
        text = scrub(json.dumps(manifest, indent=2), by_key=False) + "\n"
        try:
            size = bundle.commit(text.encode("utf-8"))
        except OSError as err:
            raise InitError(f"cannot write the support bundle {path}: {err.strerror or err}") from err
    progress.done()
    manifest["bytes"] = size
    return manifest


def format_human(manifest: dict[str, Any]) -> str:
    lines = [
        f"collected {len(manifest['collected'])} item(s), {len(manifest['failed'])} could not be collected, "
        f"{len(manifest['skipped'])} left out (see manifest.json in the bundle)"
    ]
    lines += [f"  failed   {e['name']}: {e['reason']}" for e in manifest["failed"]]
    lines += [f"  left out {e['name']}: {e['reason']}" for e in manifest["skipped"]]
    lines.append(f"wrote {human_bytes(manifest['bytes'])} in {manifest['duration_seconds']:.1f}s (mode 0600):")
    lines.append(manifest["bundle"])
    return "\n".join(lines)


def _duration(text: str) -> str:
    if parse_duration(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 24h or 7d")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "collect",
        "Write a support bundle: logs, configuration, state and host facts, secrets redacted. Exit 0 when the "
        "bundle was written, 255 when it could not be.",
    )
    parser.add_argument("--output", "-o", metavar="FILE", help="where to write the bundle (a file or a directory)")
    parser.add_argument(
        "--since",
        metavar="DURATION",
        default=DEFAULT_SINCE,
        type=_duration,
        help="log records this recent: 90m, 24h, 7d (default 24h)",
    )
    return parser


def main(ctx: HostContext, args: Sequence[str]) -> int:
    opts = build_parser().parse_args(list(args))
    seconds = parse_duration(opts.since)
    if seconds is None:
        raise UsageError(f"--since {opts.since!r} is not a duration like 30m, 24h or 7d")
    now = time.time()
    path = output_path(ctx, opts.output, now)
    progress = Progress(sys.stderr, total=6 + sum(len(log_files(ctx.paths.log_dir, b)) for b in LOG_BASES))
    manifest = collect(ctx, path, opts.since, seconds, now, progress)
    text = json.dumps(manifest, indent=2) if opts.json else format_human(manifest)
    write_report(scrub(text, by_key=False), human=not opts.json)
    return 0
