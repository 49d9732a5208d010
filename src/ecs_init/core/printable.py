"""Text made safe for a terminal: control characters shown as escapes, never sent raw.

What this program prints or logs can carry text from files the agent
container may write (desired-image, the events file, supervisor state,
ecs.config): an ESC sequence there must not reach the operator's terminal
(retitle it, rewrite earlier lines, hide text). ``escape_controls`` turns
every C0 control (U+0000–U+001F), DEL (U+007F), every C1 control
(U+0080–U+009F) and every lone surrogate (U+D800–U+DFFF, what an
undecodable byte becomes; it cannot be written as UTF-8) into a visible
escape: ``\\t``, ``\\r``, ``\\n`` by name, ``\\xHH`` and ``\\udcHH`` for the
rest. Newlines stay when the text is multi-line output. Nothing else
changes: backslashes, quotes and all other characters stay as they are.
"""

from __future__ import annotations

import re

_NAMED = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROLS_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str, keep_newlines: bool = True) -> str:
    """``text`` with control characters and lone surrogates escaped (newlines kept when asked)."""
    pattern = _CONTROLS_BUT_NEWLINE if keep_newlines else _CONTROLS
    return pattern.sub(_escape, text)
