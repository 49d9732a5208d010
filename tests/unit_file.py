"""Read a systemd unit file's directives (for fast checks of the shipped units).

Sections, ``#``/``;`` comments, backslash continuation lines, repeated keys
accumulating in order, and an empty assignment resetting the list, as
systemd reads them. Only the file is read: how systemd *runs* the unit
(environment files, order of the Exec lines, restarts) is proved against
the real systemd in ``tests/integration/test_systemd_real.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Unit:
    sections: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def values(self, section: str, key: str) -> list[str]:
        return list(self.sections.get(section, {}).get(key, []))

    def value(self, section: str, key: str, default: str | None = None) -> str | None:
        found = self.values(section, key)
        return found[-1] if found else default

    def words(self, section: str, key: str) -> list[str]:
        """All whitespace-separated words of every assignment (After=a b, After=c)."""
        return [w for v in self.values(section, key) for w in v.split()]


def parse_unit_text(text: str) -> Unit:
    unit = Unit()
    section: str | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        while line.endswith("\\") and i < len(lines):
            nxt = lines[i].strip()
            i += 1
            if nxt and nxt[0] in "#;":  # comment lines inside a continuation are skipped
                continue
            line = line[:-1] + " " + nxt
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            unit.sections.setdefault(section, {})
            continue
        if section is None or "=" not in line:
            raise ValueError(f"not a unit file line: {line!r}")
        key, value = (part.strip() for part in line.split("=", 1))
        entries = unit.sections[section].setdefault(key, [])
        if value == "":
            entries.clear()
        else:
            entries.append(value)
    return unit


def parse_unit(path: str) -> Unit:
    with open(path) as fh:
        return parse_unit_text(fh.read())
