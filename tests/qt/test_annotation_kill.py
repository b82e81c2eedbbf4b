"""Done-when test of the autosave: SIGKILL the real app while it is measuring; a restart has every completed one."""
from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
from app_process import next_line, start_app

from radview_base.atomic_file import TEMP_PREFIX


def test_every_completed_annotation_survives_a_sigkill(tmp_path, demo_volume):
    study = demo_volume.meta["study_uid"]
    proc, lines = start_app("annotation_driver:draw_lengths", tmp_path, "first.log")
    completed: dict[str, float] = {}
    deadline = time.monotonic() + 120
    try:
        while len(completed) < 6:
            line = next_line(lines, deadline, proc, tmp_path / "first.log")
            if line.startswith("COMPLETED "):
                _, ident, value = line.split()
                completed[ident] = float(value)
        time.sleep(random.uniform(0.0, 0.05))  # somewhere in drawing, measuring or writing the next one
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    while not lines.empty():  # anything it managed to report before the kill counts too
        line = lines.get()
        if line.startswith("COMPLETED "):
            completed[line.split()[1]] = float(line.split()[2])

    path = tmp_path / "annotations" / f"{study}.json"
    doc = json.loads(path.read_text())  # the file is whole (atomic writes), not torn by the kill
    on_disk = {m["id"]: m for m in doc["measurements"]}
    assert doc["study_uid"] == study
    assert set(completed) <= set(on_disk)
    for ident, value in completed.items():
        m = on_disk[ident]
        assert m["kind"] == "length" and m["unit"] == "mm" and m["value"] == pytest.approx(value, abs=1e-3)
        assert m["series_uid"] == demo_volume.meta["series_uid"] and m["created_by"]
    assert not [p for p in path.parent.iterdir() if p.name != path.name and not p.name.startswith(TEMP_PREFIX)]

    # restart on the same study: everything is back, and shown on its slice
    proc2, lines2 = start_app("annotation_driver:report", tmp_path, "second.log")
    have: dict[str, tuple[float, str]] = {}
    deadline = time.monotonic() + 120
    try:
        while True:
            line = next_line(lines2, deadline, proc2, tmp_path / "second.log")
            if line.startswith("LOADED "):
                assert line.split()[1] == study
            elif line.startswith("HAVE "):
                _, ident, value, shown = line.split()
                have[ident] = (float(value), shown)
            elif line == "END":
                break
        assert proc2.wait(timeout=60) == 0
    finally:
        proc2.kill()
        proc2.wait(timeout=30)
    assert set(completed) <= set(have)
    assert set(have) == set(on_disk)
    assert all(have[i][0] == pytest.approx(v, abs=1e-3) and have[i][1] == "shown" for i, v in completed.items())
