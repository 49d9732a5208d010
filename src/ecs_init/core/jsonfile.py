"""JSON state files this program reads back (the events file, the supervisor's state): read safely.

The agent container can write where these live, so their content is
hostile input: a file is read by ``fsutil`` (no symlink followed, never
blocking, at most ``MAX_JSON_BYTES``), and a document is refused when it is
nested deeper than ``MAX_DEPTH`` (what this program writes is two deep), so
no later walk over it, ``json.dumps`` included, can run out of stack.
Non-finite numbers (``NaN``, ``Infinity``, ``1e400``) are kept as their
text: a caller expecting a number sees a string, marks it broken, and
JSON written back out stays valid.
"""

from __future__ import annotations

import json
import math

from ecs_init.core.fsutil import read_regular, refusal

TYPE_CHECKING = False  # typing is for the type checker only: start and stop never load it (test_import_budget)
if TYPE_CHECKING:
    from typing import Any

MAX_JSON_BYTES = 1024 * 1024
MAX_DEPTH = 32


class BadJSON(ValueError):
    """Not a JSON document this program can use (one line saying why)."""


def _number(text: str) -> Any:
    value = float(text)
    return value if math.isfinite(value) else text


def _depth_within(doc: Any, limit: int) -> bool:
    """Whether ``doc`` nests at most ``limit`` containers deep (iterative: no recursion)."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return True


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a JSON document; BadJSON (a ValueError) for anything unusable, never RecursionError."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        doc = json.loads(text, parse_constant=str, parse_float=_number)
    except RecursionError:
        raise BadJSON(f"is nested more than {max_depth} deep") from None
    except ValueError as err:
        raise BadJSON(f"is not valid JSON: {err}") from None
    if not _depth_within(doc, max_depth):
        raise BadJSON(f"is nested more than {max_depth} deep")
    return doc


def read(path: str, limit: int = MAX_JSON_BYTES, max_depth: int = MAX_DEPTH) -> tuple[Any, str]:
    """(document, "") or (None, why not, one line naming ``path``); a missing file is (None, "")."""
    try:
        raw = read_regular(path, limit + 1, follow_symlinks=False)
    except FileNotFoundError:
        return None, ""
    except OSError as err:
        return None, f"{path} {refusal(err)}"
    if len(raw) > limit:
        return None, f"{path} is larger than {limit} bytes"
    try:
        return loads(raw, max_depth), ""
    except BadJSON as err:
        return None, f"{path} {err}"
