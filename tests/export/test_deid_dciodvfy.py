"""A de-identified copy raises no dciodvfy error its original did not have: real Philips MR files, classic and
enhanced multi-frame (the Type 3 sequences the profile empties were errors in every one of them)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from reference import data_path

from viewer.export.deid import deidentify_study

#: instance values inside dciodvfy's messages (vectors, values, element numbers): the same error on a copy
_VALUES = (re.compile(r"\s*-?\s*values? (are|is|=) .*$"), re.compile(r"<[0-9.\\\-+eE ]+>"),
           re.compile(r"\[[0-9]+\]"), re.compile(r"\s+"))


def normalised(lines) -> set[str]:
    """dciodvfy's Error lines without their instance-specific values."""
    out = set()
    for line in lines:
        for pattern in _VALUES[:-1]:
            line = pattern.sub("", line)
        out.add(_VALUES[-1].sub(" ", line).strip())
    return out


def _sample(tmp_path: Path) -> Path:
    classic = sorted(data_path("mr-philips", "In", "cl").glob("*.dcm"))
    enhanced = sorted(data_path("mr-philips", "In", "enh").glob("*.dcm"))
    picked = classic[:: max(len(classic) // 8, 1)][:8] + enhanced[::2]
    folder = tmp_path / "src"
    folder.mkdir()
    for f in picked:  # links: shared data is never copied
        os.symlink(f.resolve(), folder / f"{f.parent.name}-{f.name}")
    return folder


def test_normalising_keeps_the_error_and_drops_the_values():
    message = "Error - Orientation vector is not unit vector for  vector of SlabOrientation"
    a = normalised([message + " - values are 0\\-3.4"])
    b = normalised([message.replace("  ", " ") + " - values are 1\\2"])
    assert a == b == {"Error - Orientation vector is not unit vector for vector of SlabOrientation"}


def test_deidentified_philips_mr_adds_no_dciodvfy_error(tmp_path, dciodvfy):
    src = _sample(tmp_path)
    report = deidentify_study(str(src), str(tmp_path / "out"))
    assert report.n_written == len(os.listdir(src)) and not report.skipped, report.skipped_lines()
    assert any("enh-" in w.source for w in report.written) and any("cl-" in w.source for w in report.written)
    new = {}
    for w in report.written:
        extra = normalised(dciodvfy(w.path)) - normalised(dciodvfy(w.source))
        if extra:
            new[os.path.basename(w.source)] = sorted(extra)
    assert not new, f"errors the originals did not have: {new}"
