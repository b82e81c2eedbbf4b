"""``radview-cli batch run`` with PACS input: the series a query finds on a real Orthanc (tests/net/orthanc_server.py,
holding the real CT of ../shared/data/ct-pancreas-tcia) are retrieved by C-GET into ``OUT/.input/<series_uid>/``
and run like folders; a rerun keeps the finished series without retrieving it again. A series whose retrieve fails
becomes a ``failed`` row with the reason (the node faked, no network)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from batch_cases import PANCREAS

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "net"))
import orthanc_server  # noqa: E402
from pacs_cases import CALLING, CT_SERIES, CT_SLICES, CT_STUDY  # noqa: E402

CLI = [sys.executable, "-m", "viewer.cli.main"]


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _mtimes(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    if not PANCREAS.is_dir():
        pytest.skip("../shared/data/ct-pancreas-tcia is not here")
    why = orthanc_server.missing()
    if why:
        pytest.skip(why)
    free = orthanc_server.free_port
    server = orthanc_server.Orthanc(folder=tmp_path_factory.mktemp("orthanc"), dicom_port=free(), http_port=free(),
                                    modalities={CALLING: free()}).start()
    try:
        assert server.upload(PANCREAS) == CT_SLICES
        yield server
    finally:
        server.stop()


def test_batch_over_a_pacs_query_retrieves_runs_and_a_rerun_retrieves_nothing(orthanc, tmp_path):
    out = tmp_path / "out"
    cmd = [*CLI, "batch", "run", "--aet", f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}", "--calling-aet", CALLING,
           "--study", CT_STUDY, "--modality", "CT", "--model", "ct-body", "--out", str(out), "--workers", "1"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    rows = _rows(out)
    assert [(r["series_uid"], r["status"]) for r in rows] == [(CT_SERIES, "ok")], rows
    assert rows[0]["study_uid"] == CT_STUDY and rows[0]["model"] == "ct-body"
    cache = out / ".input" / CT_SERIES
    assert len([p for p in cache.rglob("*.dcm")]) == CT_SLICES
    assert (out / CT_SERIES / "labels.nii.gz").is_file()
    before = _mtimes(cache)
    assert "1 retrieved now" in done.stderr

    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-3000:]
    assert "0 retrieved now, 1 already here" in again.stderr, again.stderr[-3000:]
    assert "0 run now" in again.stdout and "1 kept from earlier runs" in again.stdout, again.stdout
    assert _mtimes(cache) == before  # nothing fetched or rewritten
    assert [(r["series_uid"], r["status"]) for r in _rows(out)] == [(CT_SERIES, "ok")]


def test_a_series_that_fails_to_retrieve_is_a_failed_row_and_the_selection_a_skipped_one(monkeypatch, tmp_path):
    from viewer.logic import batch_pacs
    from viewer.logic.batch_plan import Selection, plan_batch
    from viewer.net.errors import ConnectFailed
    from viewer.net.nodes import Node
    from viewer.net.records import SeriesRecord

    found = [SeriesRecord("1.2.3", "1.2.3.4", modality="CT", description="chest", n_instances=40),
             SeriesRecord("1.2.3", "1.2.3.5", modality="SR", description="report", n_instances=1)]
    monkeypatch.setattr(batch_pacs, "query", lambda request, cancel=None: found)

    def refuse(request, **kw):
        raise ConnectFailed("node orthanc refused the association: is it running?")

    monkeypatch.setattr(batch_pacs, "retrieve", refuse)
    node = Node(name="orthanc", ae_title="ORTHANC", host="127.0.0.1", port=4242)
    fetched = batch_pacs.fetch_series(batch_pacs.PacsInput(node), str(tmp_path), Selection.parse([], "CT"))
    assert (fetched.found, fetched.failed, fetched.skipped, fetched.retrieved) == (2, 1, 1, 0)
    plan = plan_batch(fetched.inputs, Selection.parse([], "CT"))
    assert not plan.jobs
    by_uid = {r["series_uid"]: r for r in plan.rows}
    assert by_uid["1.2.3.4"]["status"] == "failed" and "refused the association" in by_uid["1.2.3.4"]["error"]
    assert by_uid["1.2.3.5"]["status"] == "skipped" and "modality SR" in by_uid["1.2.3.5"]["error"]
