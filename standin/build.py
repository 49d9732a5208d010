#!/usr/bin/env python3
"""Build stand-in ECS agent images as `docker save` tarballs, from local files only.

No registry and no daemon are needed: the archive (manifest.json, image
config, one layer) is written directly, with busybox-static as the rootfs.

    python3 standin/build.py OUTDIR      # writes every variant into OUTDIR

Variants:
    ecs-agent-v1.tar        the "current" agent (version v1.105.1)
    ecs-agent-v2.tar        an upgrade (v1.106.0): same behaviour, new image ID
    ecs-agent-update.tar    asks for an update: exits 42 after 2 s
    ecs-agent-crashloop.tar an upgrade that crashes 1 s after start (exit 1)
    ecs-agent-health.tar    the current agent with a Docker health check (every 1 s;
                            unhealthy while <data>/standin-unhealthy exists)
    ecs-agent-truncated.tar first half of ecs-agent-v1.tar
    ecs-agent-corrupt.tar   not a tar at all
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "amazon/amazon-ecs-agent:latest"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
APPLETS = ("sh", "httpd", "sleep", "date", "cat", "rm", "mkdir", "env", "grep", "sort", "dirname", "kill", "echo", "ls")

VARIANTS: dict[str, dict[str, str]] = {
    "v1": {"STANDIN_VERSION": "v1.105.1"},
    "v2": {"STANDIN_VERSION": "v1.106.0"},
    "update": {"STANDIN_VERSION": "v1.105.1-update", "STANDIN_EXIT_CODE": "42", "STANDIN_EXIT_AFTER": "2"},
    "crashloop": {"STANDIN_VERSION": "v1.107.0-broken", "STANDIN_EXIT_CODE": "1", "STANDIN_EXIT_AFTER": "1"},
    "health": {"STANDIN_VERSION": "v1.105.1-health"},
}
SECOND = 1_000_000_000  # Docker's durations are nanoseconds
HEALTHCHECKS: dict[str, dict[str, object]] = {
    "health": {
        "Test": ["CMD-SHELL", "test ! -f /data/standin-unhealthy"],
        "Interval": SECOND,
        "Timeout": SECOND,
        "Retries": 1,
    },
}


def _busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if os.path.exists(path):
            with open(path, "rb") as fh:
                head = fh.read(4096)
            if b"ld-linux" not in head and b"interp" not in head.lower():
                return path
            return path
    raise SystemExit("busybox-static is required: apt-get install busybox-static")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 0
    tar.addfile(info)


def _layer(pad_bytes: int, pad_path: str | None = None) -> bytes:
    """The rootfs as an uncompressed tar (small: kept in memory)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in ("bin", "tmp", "data", "log", "etc", "proc", "sys", "dev"):
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        with open(_busybox(), "rb") as fh:
            _add_bytes(tar, "bin/busybox", fh.read(), 0o755)
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            info.mtime = 0
            tar.addfile(info)
        with open(os.path.join(HERE, "agent.sh"), "rb") as fh:
            _add_bytes(tar, "agent.sh", fh.read(), 0o755)
        _add_bytes(tar, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
    return buf.getvalue()


def build(variant: str, out_path: str, pad_bytes: int = 0, tag: str = TAG) -> str:
    """Write a `docker save` archive for ``variant`` to ``out_path``; return the image ID.

    ``pad_bytes`` adds a second layer of that many pseudo-random bytes
    (streamed, never held in memory) for large-tarball benchmarks.
    """
    env = VARIANTS[variant]
    layer = _layer(0)
    layer_sha = hashlib.sha256(layer).hexdigest()
    diff_ids = [f"sha256:{layer_sha}"]
    pad_file = None
    if pad_bytes:
        pad_file = out_path + ".pad.tar"
        pad_sha = _write_pad_layer(pad_file, pad_bytes)
        diff_ids.append(f"sha256:{pad_sha}")
    config = {
        "architecture": "amd64" if os.uname().machine in ("x86_64", "amd64") else "arm64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {
            "Entrypoint": ["/bin/sh", "/agent.sh"],
            "Env": ["PATH=/bin"] + [f"{k}={v}" for k, v in sorted(env.items())],
            "Labels": {"com.example.ecs-init.standin": variant},
            "WorkingDir": "/",
            **({"Healthcheck": HEALTHCHECKS[variant]} if variant in HEALTHCHECKS else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": f"ecs-init standin {variant}"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    image_id = hashlib.sha256(config_bytes).hexdigest()
    layers = [f"{layer_sha}/layer.tar"]
    if pad_file:
        layers.append(f"{diff_ids[1][7:]}/layer.tar")
    manifest = [{"Config": f"{image_id}.json", "RepoTags": [tag], "Layers": layers}]
    repo, _, ver = tag.rpartition(":")
    tmp = out_path + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT) as tar:
        _add_bytes(tar, f"{image_id}.json", config_bytes)
        _add_dir(tar, layer_sha)
        _add_bytes(tar, f"{layer_sha}/layer.tar", layer)
        if pad_file:
            tar.add(pad_file, arcname=layers[1], recursive=False)
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
        _add_bytes(tar, "repositories", json.dumps({repo: {ver: layer_sha}}).encode())
    os.replace(tmp, out_path)
    if pad_file:
        os.unlink(pad_file)
    return "sha256:" + image_id


def _write_pad_layer(path: str, size: int) -> str:
    """A layer holding one file of ``size`` pseudo-random bytes; returns its sha256."""
    chunk = 1024 * 1024
    seed = hashlib.sha256(b"standin-pad").digest()
    block = b"".join(hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range(chunk // 32))
    with open(path + ".blob", "wb") as fh:
        left = size
        n = 0
        while left > 0:
            piece = block[: min(chunk, left)]
            # vary each chunk so nothing downstream can deduplicate it
            fh.write(n.to_bytes(8, "big") + piece[8:])
            left -= len(piece)
            n += 1
    with tarfile.open(path, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("padding.bin")
        info.size = os.path.getsize(path + ".blob")
        info.mtime = 0
        with open(path + ".blob", "rb") as fh:
            tar.addfile(info, fh)
    os.unlink(path + ".blob")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for piece in iter(lambda: fh.read(chunk), b""):
            digest.update(piece)
    return digest.hexdigest()


def build_all(out_dir: str) -> dict[str, str]:
    """Build every variant into ``out_dir``; return {file name: image ID}."""
    os.makedirs(out_dir, exist_ok=True)
    ids = {}
    for variant in VARIANTS:
        name = f"ecs-agent-{variant}.tar"
        ids[name] = build(variant, os.path.join(out_dir, name))
    good = os.path.join(out_dir, "ecs-agent-v1.tar")
    with open(good, "rb") as src, open(os.path.join(out_dir, "ecs-agent-truncated.tar"), "wb") as dst:
        dst.write(src.read(os.path.getsize(good) // 2))
    with open(os.path.join(out_dir, "ecs-agent-corrupt.tar"), "wb") as dst:
        dst.write(b"this is not a docker save archive\n" * 100)
    return ids


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    started = time.monotonic()
    result = build_all(sys.argv[1])
    for name, image_id in result.items():
        print(f"{name} {image_id}")
    print(f"built in {time.monotonic() - started:.2f}s")
    _ = shutil  # keep import for callers that copy variants
