#!/usr/bin/env python3
"""Check a package build's AGENT_TARBALL: a `docker save` archive of the ECS agent.

    packaging/check-agent-tarball.py TARBALL [--arch ARCH]

Passes (prints the image's architecture, Docker's name for it, and exits 0)
only when TARBALL is an uncompressed `docker save` archive whose manifest
tags the image the program loads (amazon/amazon-ecs-agent:latest), whose
image config and layers are all present, and -- with ``--arch`` (an RPM or
Debian architecture name: x86_64/amd64, aarch64/arm64) -- whose image is for
that architecture. Otherwise prints one line saying why and exits 1. Only
tar headers, manifest.json and the image config are read: a 300 MB tarball
takes milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

from ecs_init.agent.spec import AGENT_IMAGE  # noqa: E402 - standard library only

MAX_JSON_BYTES = 4 * 1024 * 1024
# RPM and Debian architecture names -> Docker's (image config "architecture").
ARCH_ALIASES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class NotAnAgentTarball(Exception):
    pass


def _json_member(tar: tarfile.TarFile, member: tarfile.TarInfo, what: str) -> object:
    if not member.isfile() or member.size > MAX_JSON_BYTES:
        raise NotAnAgentTarball(f"has no readable {what}")
    fh = tar.extractfile(member)
    if fh is None:
        raise NotAnAgentTarball(f"has no readable {what}")
    try:
        return json.loads(fh.read().decode("utf-8", errors="replace"))
    except ValueError as err:
        raise NotAnAgentTarball(f"has a {what} that is not valid JSON ({err})")


def inspect(path: str) -> str:
    """The architecture of the agent image in ``path``; raises NotAnAgentTarball with the reason."""
    if not os.path.isfile(path):
        raise NotAnAgentTarball("is not a regular file" if os.path.exists(path) else "does not exist")
    size = os.path.getsize(path)
    if size == 0:
        raise NotAnAgentTarball("is empty")
    try:
        with tarfile.open(path, mode="r:") as tar:
            members: dict[str, tarfile.TarInfo] = {}
            for member in tar:
                members[member.name.lstrip("./")] = member
                if member.isfile() and member.offset_data + member.size > size:
                    raise NotAnAgentTarball(f"is truncated: {member.name} ends past the end of the file")
            manifest_member = members.get("manifest.json")
            if manifest_member is None:
                raise NotAnAgentTarball("is a tar archive but not a docker save archive (no manifest.json)")
            manifest = _json_member(tar, manifest_member, "manifest.json")
            if not isinstance(manifest, list) or not all(isinstance(i, dict) for i in manifest):
                raise NotAnAgentTarball("has a malformed manifest.json")
            images = [i for i in manifest if AGENT_IMAGE in (i.get("RepoTags") or [])]
            if not images:
                tags = [str(t) for i in manifest for t in (i.get("RepoTags") or [])]
                raise NotAnAgentTarball(f"does not tag {AGENT_IMAGE} (its tags: {', '.join(tags) or 'none'})")
            image = images[0]
            wanted = [image.get("Config"), *(image.get("Layers") or [])]
            missing = [str(p) for p in wanted if not isinstance(p, str) or p.lstrip("./") not in members]
            if missing:
                raise NotAnAgentTarball(f"is incomplete: {missing[0]} is missing")
            config = _json_member(tar, members[str(image["Config"]).lstrip("./")], "image config")
    except tarfile.TarError as err:
        raise NotAnAgentTarball(f"is not an uncompressed tar archive ({err})")
    except EOFError:
        raise NotAnAgentTarball("is truncated")
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise NotAnAgentTarball("has an image config without an architecture")
    return str(config["architecture"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that a file is a docker save archive of the ECS agent.")
    parser.add_argument("tarball")
    parser.add_argument("--arch", help="the package architecture the image must match (x86_64, amd64, aarch64, arm64)")
    args = parser.parse_args(argv)
    try:
        arch = inspect(args.tarball)
    except NotAnAgentTarball as err:
        print(f"AGENT_TARBALL {args.tarball} {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"AGENT_TARBALL {args.tarball} cannot be read: {err.strerror or err}", file=sys.stderr)
        return 1
    if args.arch:
        want = ARCH_ALIASES.get(args.arch, args.arch)
        if arch != want:
            print(
                f"AGENT_TARBALL {args.tarball} holds a {arch} agent image; this package is built for {args.arch}"
                f" ({want}): use the agent tarball of that architecture",
                file=sys.stderr,
            )
            return 1
    print(arch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
