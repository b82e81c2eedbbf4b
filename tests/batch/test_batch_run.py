"""``radview-cli batch run`` for real: the demo study, the real CT of ../shared/data and a broken series, with the
local engine (2 workers) and on a real Ray cluster (a head and a worker node on loopback addresses, started here);
both give the same results. A batch killed with SIGKILL resumes: every job ends in results.csv exactly once and
the finished ones are not redone.

To keep the suite short the big runs select with ``--select description=...``: the demo's 5 mm series (64 slices)
and the real CT (134 slices) run ct-lungs; the demo's 2 mm series (160 slices) and its localizer are ``skipped``
rows. The kill test runs the faster ct-body model on small copies of the real CT.
"""
from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import ray_cluster
from batch_cases import PANCREAS, refused_series, small_ct_copies

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "viewer.cli.main"]
SELECT = ["--select", "description=5 mm|PANCREAS"]
OUTPUTS = ("labels.nii.gz", "labels.json", "seg.dcm", "findings.json", "sr.dcm", "thumbnail.png")

pytestmark = pytest.mark.skipif(not PANCREAS.is_dir(), reason="../shared/data/ct-pancreas-tcia is not here")


def _env(tmp: Path) -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=str(tmp),
                RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))


def _records(out: Path) -> list[dict]:
    records = []
    for line in (out / "manifest.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:  # a line torn by the kill
            pass
    return records


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from viewer.demo import ensure_demo

    tmp = tmp_path_factory.mktemp("batch-inputs")
    refused_series(tmp / "broken")
    return [str(ensure_demo().dicom_dir), str(PANCREAS), str(tmp / "broken")]


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch-local") / "out"
    t0 = time.perf_counter()
    done = subprocess.run([*CLI, "batch", "run", *inputs, "--model", "ct-lungs", "--out", str(out), "--workers", "2",
                           *SELECT], capture_output=True, text=True, cwd=ROOT, env=_env(out.parent), timeout=400)
    return out, done, time.perf_counter() - t0


def test_local_engine_writes_every_output_and_one_row_per_series(local_run):
    out, done, _ = local_run
    assert done.returncode == 1, done.stderr[-3000:]  # the broken series failed: exit status 1
    rows = _rows(out)
    by_description = {r["description"]: r for r in rows}
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok", "skipped", "skipped"]
    assert len({r["series_key"] for r in rows}) == len(rows) == 5
    broken = by_description["broken: one position"]
    assert broken["status"] == "failed"
    assert broken["error"] == ("refused by the index: all 4 images lie at the same position: a repeated single "
                               "slice, not a volume")
    assert "does not match" in by_description["Chest 2.0 mm"]["error"]
    assert "not a volume (localizer)" in by_description["Topogram AP"]["error"]
    for description in ("Chest 5 mm average", "PANCREAS DI, iDose (3)"):
        row = by_description[description]
        assert row["status"] == "ok" and row["model"] == "ct-lungs" and row["model_version"] == "1.0"
        assert float(row["seconds"]) > float(row["model_seconds"]) > 0
        assert row["n_findings"] == "0" and float(row["volume_ml_lung_left"]) > 500  # real lungs, both
        assert float(row["volume_ml_lung_right"]) > 500 and row["study_uid"] and row["series_uid"]
        folder = out / row["series_key"]
        assert sorted(p.name for p in folder.iterdir()) == sorted(OUTPUTS)
        findings = json.loads((folder / "findings.json").read_text())
        assert findings["input"]["series_uid"] == row["series_uid"]
        assert findings["provenance"]["model_id"] == "ct-lungs"
    assert "2 ok, 1 failed, 2 skipped" in done.stdout and "results:" in done.stdout
    assert not any((out / ".partial").iterdir())


def test_outputs_are_valid_dicom_and_the_thumbnail_carries_the_stamp(local_run):
    import pydicom
    from PIL import Image

    out, _, _ = local_run
    row = next(r for r in _rows(out) if r["description"] == "Chest 5 mm average")
    folder = out / row["series_key"]
    seg = pydicom.dcmread(folder / "seg.dcm")
    assert seg.Modality == "SEG" and seg.ReferencedSeriesSequence[0].SeriesInstanceUID == row["series_uid"]
    assert {s.SegmentLabel for s in seg.SegmentSequence} >= {"lung_left", "lung_right"}
    sr = pydicom.dcmread(folder / "sr.dcm")
    assert sr.Modality == "SR" and sr.StudyInstanceUID == row["study_uid"]
    if shutil.which("dciodvfy"):
        for name in ("seg.dcm", "sr.dcm"):
            check = subprocess.run(["dciodvfy", str(folder / name)], capture_output=True, text=True, timeout=60)
            assert "Error" not in check.stdout + check.stderr, (name, (check.stdout + check.stderr)[-2000:])
    png = np.asarray(Image.open(folder / "thumbnail.png").convert("RGB")).astype(int)
    band = png[-50:]
    assert (np.abs(band[..., 0] - 255) + np.abs(band[..., 1] - 230) + band[..., 2] < 60).sum() > 30  # yellow words
    body = png[: png.shape[0] - 60]
    coloured = (np.abs(body[..., 0] - body[..., 1]) > 25) | (np.abs(body[..., 1] - body[..., 2]) > 25)
    assert coloured.mean() > 0.02  # the lungs' overlay


def _labels(folder: Path) -> np.ndarray:
    from viewer.io.image_io import read_label_map

    return read_label_map(str(folder / "labels.nii.gz")).array


def test_a_real_ray_cluster_gives_the_same_results(inputs, local_run, tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional extra radview[batch]")
    local_out, _, _ = local_run
    out = tmp_path / "out"
    command = [*CLI, "batch", "run", *inputs, "--model", "ct-lungs", "--out", str(out), "--workers", "2", *SELECT,
               "--engine", "ray"]
    short = Path(tempfile.mkdtemp(prefix="rv-ray-", dir="/tmp"))  # Ray's socket paths must stay under 108 bytes
    try:
        env = _env(short)
        if ray_cluster.can_isolate():  # a head (127.0.0.1) and a worker node (127.0.0.2) in private namespaces
            command += ["--address", f"127.0.0.1:{ray_cluster.HEAD_PORT}"]
            done = ray_cluster.run_isolated(command, short / "ray", timeout=500, env=env)
            nodes = 2
        else:  # a local Ray instance that the command starts itself (ray.init, loopback only)
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=500)
            nodes = 1
    finally:
        shutil.rmtree(short, ignore_errors=True)
    assert done.returncode == 1, (done.stdout[-2000:], done.stderr[-3000:])
    assert "ray: 2 actor(s)" in done.stdout
    rows, local_rows = _rows(out), {r["series_key"]: r for r in _rows(local_out)}
    assert {r["series_key"] for r in rows} == set(local_rows)
    for row in rows:
        mine = local_rows[row["series_key"]]
        assert (row["status"], row["error"], row["n_findings"]) == (mine["status"], mine["error"], mine["n_findings"])
        for column in ("volume_ml_lung_left", "volume_ml_lung_right", "volume_ml_airway"):
            assert row[column] == mine[column]
        if row["status"] == "ok":
            assert np.array_equal(_labels(out / row["series_key"]), _labels(local_out / row["series_key"]))
            a = json.loads((out / row["series_key"] / "findings.json").read_text())
            b = json.loads((local_out / row["series_key"] / "findings.json").read_text())
            assert a["detections"] == b["detections"] and len(a["structures"]) == len(b["structures"])
    records = _records(out)
    workers = {r["worker"].split(":")[0] for r in records if r.get("kind") == "job" and r.get("worker")}
    assert len(workers) == nodes, workers  # the two series ran on two nodes


def test_a_batch_killed_with_sigkill_resumes_without_redoing_finished_jobs(tmp_path):
    small_ct_copies(tmp_path / "in", 3)
    refused_series(tmp_path / "in" / "broken")
    out = tmp_path / "out"
    command = [*CLI, "batch", "run", str(tmp_path / "in"), "--model", "ct-body", "--out", str(out), "--workers", "1"]
    first = subprocess.Popen(command, cwd=ROOT, env=_env(tmp_path), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            if (out / "results.csv").is_file() and any(r["status"] == "ok" for r in _rows(out)):
                break
            time.sleep(0.05)
        assert first.poll() is None, "the batch ended before it could be killed"
        os.killpg(first.pid, signal.SIGKILL)  # the batch and its worker, mid-run
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(timeout=30)
    finished = {r["series_key"] for r in _rows(out) if r["status"] == "ok"}
    assert 1 <= len(finished) < 3
    stamps = {key: {p.name: p.stat().st_mtime_ns for p in (out / key).iterdir()} for key in finished}
    time.sleep(0.05)
    second = subprocess.run(command, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert second.returncode == 1, second.stderr[-3000:]  # the broken series
    rows = _rows(out)
    keys = [r["series_key"] for r in rows]
    assert len(keys) == len(set(keys)) == 4, keys
    assert sorted(r["status"] for r in rows) == ["failed", "ok", "ok", "ok"]
    for key in finished:  # kept as they were: same files, same times
        assert {p.name: p.stat().st_mtime_ns for p in (out / key).iterdir()} == stamps[key]
    assert f"{3 - len(finished)} to run, {len(finished)} finished earlier" in second.stderr
    records = _records(out)
    ran = [r["key"] for r in records if r.get("kind") == "job" and r["status"] == "ok"]
    assert sorted(ran) == sorted(set(ran)) and set(ran) == {r["series_key"] for r in rows if r["status"] == "ok"}
    third = subprocess.run(command, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert "0 to run, 3 finished earlier" in third.stderr and _rows(out) == rows
