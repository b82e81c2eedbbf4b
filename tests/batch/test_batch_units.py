"""The parts of a batch that need no model run: selection, the manifest, the job's failure paths, the CLI's
refusals, intervals — and the planning process never imports torch."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from batch_cases import refused_series, truncate_pixels, unreadable_series

from viewer.cli.main import main
from viewer.logic.batch_eval import bootstrap_ci, describe
from viewer.logic.batch_jobs import JobWorker, ModelSpec, run_job
from viewer.logic.batch_manifest import BatchFolderError, Manifest
from viewer.logic.batch_plan import Selection, SelectionError, plan_batch

ROOT = Path(__file__).resolve().parents[2]


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


class _Entry:
    def __init__(self, modality="CT", description="Chest 5 mm", n_images=64):
        self.modality, self.description, self.n_images = modality, description, n_images


def test_selection_terms_and_refusals():
    s = Selection.parse(["description=chest|thorax", "min_slices=50"], default_modality="CT")
    assert s.modalities == ("CT",) and s.min_slices == 50
    assert s.refusal(_Entry()) == ""
    assert "modality MR" in s.refusal(_Entry(modality="MR"))
    assert "does not match" in s.refusal(_Entry(description="Abdomen"))
    assert "fewer than min_slices=50" in s.refusal(_Entry(n_images=20))
    assert Selection.parse(["modality=any"], default_modality="CT").refusal(_Entry(modality="MR")) == ""
    assert Selection.parse(["modality=ct,pt"]).modalities == ("CT", "PT")
    for bad in (["size=3"], ["description=("], ["min_slices=many"], ["modality"]):
        with pytest.raises(SelectionError):
            Selection.parse(bad)


def test_manifest_ignores_a_torn_line_refuses_another_model_and_a_second_run(tmp_path):
    book = Manifest(str(tmp_path), "ct-lungs", "1.0", ["lung_left"])
    book.lock()
    book.start_run({"jobs": 1})
    row = {"series_key": "1.2.3", "status": "ok", "volume_ml_lung_left": 12.5}
    (tmp_path / "1.2.3").mkdir()
    (tmp_path / "1.2.3" / "findings.json").write_text("{}")
    book.record_job({"key": "1.2.3", "status": "ok", "row": row, "fingerprint": "f1", "content_hash": "h1"})
    with open(book.path, "ab") as fh:  # a kill in the middle of the next record
        fh.write(b'{"kind": "job", "key": "4.5.6", "sta')
    with pytest.raises(BatchFolderError, match="another batch is running"):
        Manifest(str(tmp_path), "ct-lungs", "1.0").lock()
    book.close()
    again = Manifest(str(tmp_path), "ct-lungs", "1.0", ["lung_left"])
    assert again.torn_lines == 1 and set(again.latest) == {"1.2.3"}
    assert again.finished("1.2.3", "f1")["row"] == row
    assert again.finished("1.2.3", "f2") is None and again.previous_ok("1.2.3") is not None
    assert Manifest(str(tmp_path), "ct-lungs", "1.1").previous_ok("1.2.3") is None  # another version: redo
    (tmp_path / "1.2.3" / "findings.json").unlink()
    assert again.previous_ok("1.2.3") is None  # outputs gone: redo
    with pytest.raises(BatchFolderError, match="holds the results of model 'ct-lungs'"):
        Manifest(str(tmp_path), "ct-body", "1.0")


def test_bootstrap_intervals_contain_their_mean():
    for values in ([0.9], [0.2, 0.95], [0.81, 0.84, 0.9, 0.62, 0.97, 0.88, 0.79], list(range(30))):
        low, high = bootstrap_ci(values)
        mean = sum(values) / len(values)
        assert low <= mean <= high
    assert bootstrap_ci([0.1, 0.5, 0.7]) == bootstrap_ci([0.1, 0.5, 0.7])  # seeded
    d = describe([0.5, None, float("nan"), 0.7])
    assert d["n"] == 2 and d["mean"] == pytest.approx(0.6) and d["median"] == pytest.approx(0.6)


def test_the_index_refusal_and_an_unreadable_series_become_failed_outcomes(tmp_path):
    refused_series(tmp_path / "in" / "broken")
    unreadable_series(tmp_path / "in" / "cut")
    plan = plan_batch([str(tmp_path / "in")], Selection(("CT",)))
    assert [r["status"] for r in plan.rows] == ["failed"]
    assert "refused by the index: all 4 images lie at the same position" in plan.rows[0]["error"]
    assert len(plan.rows[0]["input"]) and plan.rows[0]["n_images"] == 4
    (job,) = plan.jobs
    truncate_pixels(tmp_path / "in" / "cut")  # after the index saw the headers
    outcome = run_job(job, JobWorker(ModelSpec("ct-body", device="cpu"), str(tmp_path / "out")))
    assert outcome["status"] == "failed"
    assert "the series' files changed since the batch was planned: 6 of 6 no longer read" in outcome["error"]
    assert outcome["seconds"] >= 0 and not (tmp_path / "out" / job.key).exists()


def test_cli_refusals(tmp_path, capsys):
    assert main(["batch", "run", str(tmp_path), "--model", "no-such-model", "--out", str(tmp_path / "o")]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["batch", "run", str(tmp_path), "--model", "ct-lungs", "--out", str(tmp_path / "o"),
                 "--address", "127.0.0.1:1"]) == 2
    assert main(["batch", "run", str(tmp_path), "--model", "ct-lungs", "--out", str(tmp_path / "o"),
                 "--select", "colour=red"]) == 2
    assert main(["batch", "eval", "--pred", str(tmp_path), "--out", str(tmp_path / "e")]) == 2
    with pytest.raises(SystemExit):
        main(["batch", "run", "--help"])
    assert "PACS input" in capsys.readouterr().out


def test_a_batch_of_failures_runs_to_its_end_retries_and_never_imports_torch_here(tmp_path):
    """Every failure becomes its row, once; a rerun tries a failed job again; the planning process imports no
    torch (the workers do)."""
    refused_series(tmp_path / "in" / "broken")
    mr = tmp_path / "in" / "mr"
    unreadable_series(mr, n=5)
    import pydicom

    for path in mr.glob("*.dcm"):  # the CT relabelled MR: the CT model refuses it
        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.save_as(path, enforce_file_format=True)
    out = tmp_path / "out"
    code = ("import sys, json\nfrom viewer.cli.main import main\n"
            f"rc = main(['batch', 'run', {str(tmp_path / 'in')!r}, '--model', 'ct-lungs', '--out', {str(out)!r}, "
            "'--select', 'modality=any', '--workers', '1'])\n"
            "print(json.dumps({'rc': rc, 'torch': 'torch' in sys.modules}))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for _ in range(2):  # the second run retries the failed job
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert result == {"rc": 1, "torch": False}
        assert "1 to run, 0 finished earlier, 0 skipped, 1 refused by the index" in done.stderr
        rows = {r["description"]: r for r in _rows(out / "results.csv")}
        assert len(rows) == 2
        assert rows["broken: one position"]["status"] == "failed"
        assert "all 4 images lie at the same position" in rows["broken: one position"]["error"]
        assert rows["pixels cut short"]["status"] == "failed"
        assert "CT lungs works on CT images; this series is MR" in rows["pixels cut short"]["error"]
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sum(r.get("kind") == "run" for r in records) == 2
    mr = rows["pixels cut short"]["series_key"]
    assert sum(r.get("key") == mr for r in records) == 2  # tried in each run


def test_a_worker_killed_mid_run_is_replaced_and_its_job_handed_out_again(tmp_path):
    import signal
    import threading
    import time

    import psutil
    from batch_cases import small_ct_copies

    from viewer.logic.batch_engines import LocalEngine

    small_ct_copies(tmp_path / "in", 1)
    plan = plan_batch([str(tmp_path / "in")], Selection(("CT",)))
    engine = LocalEngine(ModelSpec("ct-body", device="cpu"), str(tmp_path / "out"), workers=1)
    outcomes, killed = [], []

    def kill_the_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            for child in psutil.Process().children(recursive=True):
                try:
                    cmdline = " ".join(child.cmdline())
                except psutil.Error:
                    continue
                if "spawn_main" in cmdline and "resource_tracker" not in cmdline:
                    os.kill(child.pid, signal.SIGKILL)
                    killed.append(child.pid)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    engine.run(plan.jobs, lambda job, outcome: outcomes.append((job, outcome)))
    killer.join()
    assert killed
    ((job, outcome),) = outcomes
    assert job.attempt == 2 and outcome["status"] == "ok", outcome
    assert str(killed[0]) not in outcome["worker"]


def test_label_census_counts_as_a_pass_over_the_whole_map_would_and_picks_the_same_thumbnail_slice():
    """The census counts each slice first and the labels only between the first and the last labelled slice: the
    same counts as a comparison over every voxel (background, many labels and an empty map included), and its slice
    counts choose the thumbnail's slice as the thumbnail's own count does."""
    from types import SimpleNamespace

    import numpy as np

    from radview_base.geometry import Geometry
    from viewer.logic.batch_jobs import label_census, label_counts
    from viewer.logic.batch_thumbnail import render

    rng = np.random.default_rng(7)
    grid = Geometry((6, 24, 20), (2.0, 0.8, 0.8))
    sparse = np.zeros(grid.shape_zyx, np.uint8)
    sparse[2, 3:9, 4:12] = 3
    sparse[4, 10:20, 5:15] = rng.integers(0, 3, (10, 10)) * 2  # 0, 2 or 4
    many = np.zeros(grid.shape_zyx, np.uint16)
    many[1:5] = rng.integers(0, 40, (4, 24, 20))
    cases = [(sparse, {0: "background", 2: "lung_left", 3: "airway", 4: "nodule", 9: "absent"}),
             (many, {k: f"label {k}" for k in range(0, 45)}),  # more than 32 labels: the chunked bincount
             (np.zeros(grid.shape_zyx, np.uint8), {1: "body"}),
             (sparse[2:3], {0: "background", 3: "airway"})]  # one slice
    for array, names in cases:
        result = SimpleNamespace(labels=array, label_names=names, detections=[], structures=[])
        counts, per_slice = label_census(result, chunk=97)
        assert counts == {k: int(np.count_nonzero(array == k)) for k in names} == label_counts(result, chunk=97)
        if array.shape[0] > 1:
            assert per_slice.tolist() == np.count_nonzero(array.reshape(array.shape[0], -1), axis=1).tolist()
        else:
            assert per_slice is None
    assert label_census(SimpleNamespace(labels=None, label_names={}))[0] == {}
    volume = SimpleNamespace(array=rng.integers(-1000, 400, grid.shape_zyx).astype(np.int16), geometry=grid,
                             modality="CT")
    result = SimpleNamespace(labels=sparse, label_names={2: "lung_left", 3: "airway", 4: "nodule"}, detections=[],
                             structures=[])
    _, per_slice = label_census(result)
    assert np.array_equal(render(volume, result, "ct-lungs 1.0", slice_counts=per_slice),
                          render(volume, result, "ct-lungs 1.0"))
