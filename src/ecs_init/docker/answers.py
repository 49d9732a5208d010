"""Reading the Engine's answers: errors, JSON documents, the image load's messages, logs."""

from __future__ import annotations

import json

from ecs_init.docker import transport
from ecs_init.docker.api import LogLine, Readable
from ecs_init.docker.errors import Conflict, EngineError, EngineUnavailable, NotFound

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any

MAX_JSON_BYTES = 16 * 1024 * 1024
MAX_ERROR_BYTES = 64 * 1024
MAX_MESSAGE_BYTES = 64 * 1024  # one message of the load's stream


def _message(raw: bytes, status: int, reason: str) -> str:
    """The engine's error message (``{"message": ...}``), else its text, as one line."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        doc = json.loads(text)
        if isinstance(doc, dict) and doc.get("message"):
            text = str(doc["message"]).strip()
    except (ValueError, RecursionError):
        pass
    lines = text.splitlines()
    return lines[0] if lines else f"HTTP {status} {reason}".strip()


def error_of(resp: transport.Response) -> EngineError:
    """The engine's error answer as NotFound (404), Conflict (409) or EngineError."""
    try:
        raw = resp.read_all(MAX_ERROR_BYTES)
    except EngineUnavailable:
        raw = b""
    finally:
        resp.close()
    message = _message(raw, resp.status, resp.reason)
    cls = NotFound if resp.status == 404 else Conflict if resp.status == 409 else EngineError
    return cls(message, resp.status)


def json_of(resp: transport.Response, what: str) -> Any:
    """The JSON document ``resp`` carries (at most MAX_JSON_BYTES)."""
    try:
        raw = resp.read_all(MAX_JSON_BYTES)
    finally:
        resp.close()
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise EngineError(f"Docker answered {what} with something that is not JSON", resp.status)


def load_messages(resp: Readable) -> list[str]:
    """The names in the load's JSON message stream; its error as one line."""
    decoder = json.JSONDecoder()
    text = ""
    loaded: list[str] = []
    while True:
        data = resp.read()
        text += data.decode("utf-8", errors="replace")
        while True:
            text = text.lstrip()
            try:
                message, end = decoder.raw_decode(text)
            except (ValueError, RecursionError):
                break
            text = text[end:]
            if not isinstance(message, dict):
                continue
            if message.get("error") or message.get("errorDetail"):
                detail = message.get("error") or (message.get("errorDetail") or {}).get("message", "")
                first = str(detail).strip().splitlines()
                raise EngineError(f"Docker refused the image archive: {first[0] if first else 'unknown error'}")
            said = str(message.get("stream", "")).strip()
            if said.startswith("Loaded image"):
                loaded.append(said.split(":", 1)[1].strip())
        if not data:
            return loaded
        if len(text) > MAX_MESSAGE_BYTES:
            raise EngineError("Docker answered the image load with an over-long message")


def demux(data: bytes) -> list[LogLine]:
    """Split Docker's log stream into lines, in order: multiplexed frames
    (8-byte header: stream, 0, 0, 0, big-endian length) or, for a TTY, raw text."""
    multiplexed = len(data) >= 8 and data[0] in (0, 1, 2) and data[1:4] == b"\0\0\0"
    chunks: list[tuple[str, bytes]] = []
    if multiplexed:
        pos = 0
        while pos + 8 <= len(data):
            size = int.from_bytes(data[pos + 4 : pos + 8], "big")
            stream = "stderr" if data[pos] == 2 else "stdout"
            chunks.append((stream, data[pos + 8 : pos + 8 + size]))
            pos += 8 + size
    else:
        chunks.append(("stdout", data))
    lines: list[LogLine] = []
    partial: dict[str, bytes] = {}
    for stream, chunk in chunks:
        pieces = (partial.pop(stream, b"") + chunk).split(b"\n")
        if pieces[-1]:
            partial[stream] = pieces[-1]
        lines.extend(LogLine(stream, p.decode("utf-8", errors="replace").rstrip("\r")) for p in pieces[:-1])
    lines.extend(LogLine(stream, rest.decode("utf-8", errors="replace")) for stream, rest in partial.items())
    return [line for line in lines if line.text.strip()]
