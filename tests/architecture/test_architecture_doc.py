"""docs/ARCHITECTURE.md stays true: every path it names exists, every module a room's row lists is in that room,
and every room of the code is on the map."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"
PATH = re.compile(r"`((?:viewer|ai|radview_base|tests|docs|scripts|bench)/[\w./-]*)`")


def _rows(text: str) -> list[tuple[str, str]]:
    """(room, listed files) of the 'The rooms' table."""
    section = text.split("## The rooms", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[0].startswith("`"):
            rows.append((cells[0].strip("`"), cells[1]))
    return rows


def test_every_path_named_exists():
    text = DOC.read_text(encoding="utf-8")
    named = {p.rstrip("/") for p in PATH.findall(text) if not p.startswith("viewer/net")}  # net: a room to come
    assert len(named) > 40
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert missing == []


def test_every_module_listed_in_a_room_is_there():
    rows = _rows(DOC.read_text(encoding="utf-8"))
    assert len(rows) >= 10
    missing = []
    for room, listed in rows:
        for name in re.findall(r"`([\w/]+(?:\.py|/))`", listed):
            target = ROOT / room / name if "/" not in name.rstrip("/") or not name.startswith(room) else ROOT / name
            if not target.exists():
                missing.append(f"{room}{name}")
    assert missing == []


def test_every_room_of_the_code_is_on_the_map():
    rooms = {r for r, _ in _rows(DOC.read_text(encoding="utf-8"))}
    packages = {f"{p.relative_to(ROOT).as_posix()}/" for top in ("viewer", "ai", "radview_base")
                for p in [ROOT / top, *(ROOT / top).iterdir()] if p.is_dir() and (p / "__init__.py").exists()}
    packages -= {"viewer/", "ai/runners/", "ai/metrics/"}  # the package itself; ai's subpackages are in ai's row
    assert sorted(packages - rooms) == []
