"""Done-when test of the label layer autosave: SIGKILL the real app while it paints with the brush; a restart has
every stroke it reported as saved, in the restored layer, with its edit marks."""
from __future__ import annotations

import getpass
import json
import os
import random
import signal
import time

from app_process import next_line, start_app


def _persisted(line: str, strokes: dict, revisions: list) -> None:
    _, n, z, crc, revision = line.split()
    strokes[int(z)] = (int(n), int(crc))
    if revision not in revisions:
        revisions.append(revision)


def test_every_saved_stroke_survives_a_sigkill(tmp_path, demo_volume):
    study = demo_volume.meta["study_uid"]
    proc, lines = start_app("layer_driver:paint_strokes", tmp_path, "first.log")
    strokes: dict[int, tuple[int, int]] = {}  # slice -> (stroke number, crc32 of the slice once saved)
    revisions: list[str] = []
    timings: list[tuple[float, float]] = []
    deadline = time.monotonic() + 180
    try:
        while len({n for n, _ in strokes.values()}) < 6:
            line = next_line(lines, deadline, proc, tmp_path / "first.log")
            if line.startswith("PERSISTED "):
                _persisted(line, strokes, revisions)
            elif line.startswith("TIMING "):
                timings.append(tuple(float(v) for v in line.split()[1:]))
        time.sleep(random.uniform(0.0, 0.12))  # somewhere in painting, snapshotting or writing the next stroke
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    while not lines.empty():  # anything it managed to report before the kill counts too
        line = lines.get()
        if line.startswith("PERSISTED "):
            _persisted(line, strokes, revisions)
    snapshot_ms = sorted(t[0] for t in timings)
    write_ms = sorted(t[1] for t in timings)
    print(f"\nreal app, demo 160x512x512: GUI snapshot per stroke median {snapshot_ms[len(snapshot_ms) // 2]:.1f} ms "
          f"(max {snapshot_ms[-1]:.1f}), background write median {write_ms[len(write_ms) // 2]:.0f} ms "
          f"(max {write_ms[-1]:.0f}); {len({n for n, _ in strokes.values()})} strokes reported saved")

    folder = tmp_path / "annotations" / study / "layers"
    (manifest_path,) = folder.glob("*.json")  # whole (atomic writes), not torn by the kill
    manifest = json.loads(manifest_path.read_text())
    assert manifest["study_uid"] == study and manifest["series_uid"] == demo_volume.meta["series_uid"]
    assert manifest["name"] == "labels.nii.gz" and (folder / manifest["data"]["file"]).exists()
    assert manifest["revision"] not in ("", "0")  # edited

    # restart on the same study: the layer is back, every reported stroke in it
    proc2, lines2 = start_app("layer_driver:report_layers", tmp_path, "second.log")
    layers, slices, messages = [], {}, []
    deadline = time.monotonic() + 180
    try:
        while True:
            line = next_line(lines2, deadline, proc2, tmp_path / "second.log")
            if line.startswith("LOADED "):
                assert line.split()[1] == study
            elif line.startswith("LAYER "):
                layers.append(line.split()[1:])
            elif line.startswith("SLICE "):
                slices[int(line.split()[1])] = int(line.split()[2])
            elif line.startswith("MESSAGE "):
                messages.append(line)
            elif line == "END":
                break
        assert proc2.wait(timeout=60) == 0
    finally:
        proc2.kill()
        proc2.wait(timeout=30)
    assert layers and layers[0][:2] == ["labels.nii.gz", getpass.getuser()]
    assert layers[0][2] == manifest["revision"]  # the last saved stroke's revision (or a later one's)
    assert not any("could not be read" in m for m in messages)
    lost = {z: n for z, (n, crc) in strokes.items() if slices.get(z) != crc}
    assert not lost, f"strokes reported saved but not restored (slice: stroke): {lost}"
