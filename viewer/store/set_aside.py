"""What a restore does with a stored file it cannot read: reads it defensively, sets it aside, says why.

Every file of the autosave (a study's annotations, a layer's manifest and its NRRD data) is read here or with the
same care: JSON is refused before parsing when it is too large (:data:`MAX_JSON_BYTES`) or nested too deeply
(:data:`MAX_JSON_DEPTH`, counted on the raw bytes so neither the parser nor a later recursive walk can run out of
stack), and it must be UTF-8. A file that fails is renamed to ``<name>.corrupt-<time>`` next to it — never
deleted — and reported as a :class:`Problem` ``(file, reason)``; the reason ends with where it was kept.
"""
from __future__ import annotations

import json
import os
import re
import time
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

MAX_JSON_BYTES = 256 << 20  # a study's annotations are ~1 kB per measurement, a layer manifest a few kB
MAX_JSON_DEPTH = 128  # what radview writes is < 10 levels deep
MAX_REASON_CHARS = 300
CORRUPT_MARK = ".corrupt-"

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: linear, no backtracking
_STEPS = np.zeros(256, np.int8)
_STEPS[[ord("["), ord("{")]] = 1
_STEPS[[ord("]"), ord("}")]] = -1
_QUOTE = 2
_KINDS = _STEPS.copy()
_KINDS[ord('"')] = _QUOTE


class StoredFileError(ValueError):
    """A stored file that cannot be used (too large, too deep, not UTF-8, not what it should hold)."""


class Problem(NamedTuple):
    """A stored file that could not be restored: the path it had, and why (with where it was set aside)."""

    file: Path
    reason: str


def json_depth(raw: bytes) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON text (brackets inside strings are not counted)."""
    if b"\\" in raw:  # escaped quotes: strings as the parser sees them (a regex, ~35 MB/s)
        steps = _STEPS[np.frombuffer(_STRINGS.sub(b'""', raw), np.uint8)]
    else:  # every quote opens or closes a string: brackets after an odd number of quotes are inside one
        kinds = np.take(_KINDS, np.frombuffer(raw, np.uint8))
        kinds = kinds[np.flatnonzero(kinds)]  # the brackets and quotes only
        quotes = kinds == _QUOTE
        steps = np.where(quotes, 0, kinds) * ((np.cumsum(quotes, dtype=np.int64) & 1) == 0)
    return int(np.cumsum(steps, dtype=np.int64).max(initial=0))


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value in ``path``: refused (:class:`StoredFileError`) when too large, too deep or not UTF-8;
    ``OSError`` and ``json.JSONDecodeError`` (a ``ValueError``) as they come."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > max_bytes:  # (before reading: read(n) allocates n bytes first)
            raise StoredFileError(f"it is larger than {max_bytes >> 20} MiB")
        raw = fh.read()
    if len(raw) > max_bytes:  # it grew meanwhile
        raise StoredFileError(f"it is larger than {max_bytes >> 20} MiB")
    depth = json_depth(raw)
    if depth > max_depth:
        raise StoredFileError(f"it is nested {depth} levels deep (at most {max_depth} are read)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StoredFileError(f"it is not UTF-8 text (byte {exc.start}: {raw[exc.start:exc.start + 1]!r})") from None
    return json.loads(text)


def describe(exc: BaseException) -> str:
    """A short reason for the user from what reading a file raised."""
    if isinstance(exc, json.JSONDecodeError):
        text = f"it is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
    elif isinstance(exc, RecursionError):
        text = "it is nested too deeply to read"
    elif isinstance(exc, MemoryError):
        text = "it is too large to read into memory"
    elif isinstance(exc, zlib.error):
        text = f"its compressed data is damaged ({exc})"
    elif isinstance(exc, FileNotFoundError):
        text = f"{Path(exc.filename).name if exc.filename else 'a file'} is missing"
    elif isinstance(exc, StoredFileError) or type(exc).__name__.endswith("FormatError"):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= MAX_REASON_CHARS else text[:MAX_REASON_CHARS - 1] + "…"


def set_aside(path: Path) -> Path | None:
    """Rename ``path`` to ``<name>.corrupt-<time>`` (``-2``, ``-3``… when taken); the new path, or None when it could
    not be renamed (it is then left where it is, never deleted)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}{CORRUPT_MARK}{stamp}-{n}")
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


def kept_text(path: Path, kept: Path | None) -> str:
    """How a problem's reason ends: where the file now is."""
    return f"kept as {kept}" if kept is not None else f"it could not be moved aside and was left as {path}"


__all__ = ["Problem", "StoredFileError", "read_json", "json_depth", "describe", "set_aside", "kept_text",
           "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "CORRUPT_MARK"]
