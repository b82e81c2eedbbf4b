"""File → Export → DICOM SEG, NIfTI, DICOM SR, JSON and a de-identified copy, from the real window on the demo:
each export runs on a worker (the GUI keeps running), reads back equal, and a failure leaves no file."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import Qt
from stall_probe import STALL_BOUND_S, StallProbe

from ai.api import Detection, InferenceResult, Provenance, StructureFeatures
from radview_base.atomic_file import TEMP_PREFIX
from radview_base.geometry import Geometry
from viewer.core.ai_bridge import layers_from_result
from viewer.core.annotations import Plane, new_annotation
from viewer.core.layers import LabelLayer
from viewer.io.image_io import read_label_map
from viewer.io.volume import LabelMap, Volume
from viewer.qt.controllers import export_actions as ea

PROV = Provenance("test-nodules", "Test nodules", "0.9", "classical image analysis, not a learned network", "cpu",
                  "float32", 0.2, "2026-01-01T00:00:00Z", {"threshold": 0.5})
TIMEOUT_MS = 60000


# --- helpers -----------------------------------------------------------------------------------------------------
@pytest.fixture
def window(demo_series_window):
    return demo_series_window


def add_ai_result(session):
    """An AI result on the slice shown: a nodule box (label 1), one detection, one structure."""
    g = session.volume.geometry
    k = int(round(session.cursor_index()[0]))
    labels = np.zeros(g.shape_zyx, np.uint8)
    labels[k - 3:k + 4, 200:236, 330:370] = 1
    centre = tuple(g.index_to_world((k, 218, 350)))
    det = Detection(centre, 21.0, 2.1, 38.0, "solid", 0.87, "nodule", "lung_left")
    structure = StructureFeatures(1, "nodule", 10080, 13.57, centre, 29.4, 31.6, 0.71, 38.0, 12.0, -20.0, 90.0)
    result = InferenceResult(g, PROV, labels, {1: "nodule"}, (det,), structures=(structure,))
    label_layer, marker_layer = layers_from_result(result, g)
    session.add_layer(label_layer)
    session.add_layer(marker_layer)
    return label_layer, marker_layer


def add_length(window):
    view = window.layout_widget.views["axial"]
    points = [view.plane.to_world(view.k, 300, c) for c in (150, 260)]
    session = window.session
    return session.annotations.add(new_annotation("length", points, view.annotation_overlay.view_plane(),
                                                  series_uid=session.volume.meta["series_uid"], label="test line"))


def run_export(qtbot, window, start):
    """Start an export (``start()`` returns its job id) and wait for its outcome: ("finished"|"failed", value)."""
    outcomes = []
    exports = window.exports
    on_done = lambda kind, value: outcomes.append(("finished", value))  # noqa: E731
    on_fail = lambda kind, message: outcomes.append(("failed", message))  # noqa: E731
    exports.finished.connect(on_done)
    exports.failed.connect(on_fail)
    try:
        job = start()
        if job is None:  # refused before any work started (the message is shown at once)
            return "refused", outcomes[0][1] if outcomes else None
        assert exports.busy
        qtbot.waitUntil(lambda: bool(outcomes), timeout=TIMEOUT_MS)
    finally:
        exports.finished.disconnect(on_done)
        exports.failed.disconnect(on_fail)
    return outcomes[0]


def no_temporaries(folder) -> bool:
    return not [p for p in Path(folder).rglob("*") if p.name.startswith((TEMP_PREFIX, ".radview-"))]


def sr_items(ds):
    """(value type, concept meaning, value) of every content item of an SR, depth first."""
    out = []
    for item in ds.get("ContentSequence", []):
        name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
        kind = item.ValueType
        if kind == "NUM":
            out.append((kind, name, float(item.MeasuredValueSequence[0].NumericValue)))
        elif kind == "TEXT":
            out.append((kind, name, str(item.TextValue)))
        out.extend(sr_items(item))
    return out


def link_subset(files, folder: Path) -> Path:
    """A source folder of symbolic links (the shared demo data is never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        os.symlink(os.path.realpath(f), folder / Path(f).name)
    return folder


# --- enabled state, an image that is not DICOM -------------------------------------------------------------------
def test_actions_say_why_they_are_disabled_and_dicom_exports_refuse_a_nifti_image(qtbot, tmp_path, new_window):
    from viewer.io.image_io import write_image

    w = new_window(size=(1400, 800))
    try:
        ex = w.exports
        actions = [ex.seg_action, ex.nifti_action, ex.sr_action, ex.json_action, ex.deid_action]
        assert all(a in w.action_registry.menu("File/Export").actions() for a in actions)
        assert [a.text() for a in actions] == ["Segmentation as DICOM &SEG…", "Segmentation as &NIfTI…",
                                               "&Measurements and findings as DICOM SR…",
                                               "Measurements and findings as &JSON…",
                                               "&De-identified copy of the study…"]
        assert not any(a.isEnabled() for a in actions) and all(a.toolTip() == ea.NO_SERIES for a in actions)

        # a NIfTI image (not DICOM): open it like File → Open file…
        g = Geometry((12, 20, 24), (2.0, 0.7, 0.7), (-8.0, -7.0, -8.0), np.eye(3))
        image = tmp_path / "ct.nii.gz"
        write_image(Volume(np.full(g.shape_zyx, -500, np.int16), g), str(image))
        w.open_path(str(image))
        qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks._running, timeout=20000)
        w.action_registry.menu("File/Export").aboutToShow.emit()
        assert ex.seg_action.toolTip() == ex.nifti_action.toolTip() == ea.NO_LABELS
        assert ex.sr_action.toolTip() == ex.json_action.toolTip() == ea.NOTHING_MEASURED
        assert not ex.deid_action.isEnabled() and "ct.nii.gz was not read from a DICOM series" in \
            ex.deid_action.toolTip()

        labels = np.zeros(g.shape_zyx, np.uint8)
        labels[3:8, 5:15, 6:18] = 2
        labels[5, 9:11, 10:12] = 5
        layer = LabelLayer(LabelMap(labels, g, {2: "liver", 5: "lesion"}), name="my labels")
        w.session.add_layer(layer)
        assert ex.seg_action.isEnabled() and ex.nifti_action.isEnabled()
        assert "not available: ct.nii.gz was not read from a DICOM series" in ex.seg_action.toolTip()

        # DICOM SEG and SR: refused with a readable, non-modal message; no file
        kind, message = run_export(qtbot, w, lambda: ex.export_seg(str(tmp_path / "seg.dcm")))
        assert kind == "refused" and message == w.notices.last_message
        assert "DICOM SEG not written" in w.notices.last_message
        assert "not read from a DICOM series" in w.notices.last_message
        assert w.notices.message_box.isVisible() and not w.notices.message_box.isModal()
        w.notices.message_box.close()
        ex.choose_seg()  # the menu entry says the same, before any dialog
        assert "Export the segmentation as NIfTI instead" in w.notices.last_message
        plane = Plane((0, 0, 1), g.index_to_world((5, 0, 0)))
        w.session.annotations.add(new_annotation("length", [g.index_to_world((5, 4, 4)),
                                                            g.index_to_world((5, 4, 14))], plane, label="x"))
        assert ex.sr_action.isEnabled() and ex.json_action.isEnabled()
        assert run_export(qtbot, w, lambda: ex.export_sr(str(tmp_path / "sr.dcm")))[0] == "refused"
        assert not os.path.exists(tmp_path / "seg.dcm") and not os.path.exists(tmp_path / "sr.dcm")

        # NIfTI and JSON work on any image
        out = tmp_path / "out" / "mine.nrrd"
        kind, value = run_export(qtbot, w, lambda: ex.export_nifti(str(out), layer))
        assert kind == "finished" and value == str(out) and w.notices.status_label.text().startswith(f"Saved {out}")
        back = read_label_map(str(out))
        assert np.array_equal(back.array, labels) and back.geometry.is_close(g)
        assert back.labels == {2: "liver", 5: "lesion"}
        assert json.loads((out.parent / "labels.json").read_text()) == {"2": "liver", "5": "lesion"}
        assert not (out.parent / "findings.json").exists()  # not an AI result: no provenance
        kind, value = run_export(qtbot, w, lambda: ex.export_findings_json(str(tmp_path / "m.json")))
        doc = json.loads(Path(value).read_text())
        assert kind == "finished" and doc["measurements"][0]["value"] == pytest.approx(10 * 0.7)
    finally:
        w.close()


# --- DICOM SEG and NIfTI ----------------------------------------------------------------------------------------
def test_seg_and_nifti_of_an_ai_result_and_of_the_demo_labels(window, qtbot, tmp_path, demo_labels):
    import highdicom as hd

    from viewer.io.seg_file import read_seg

    ex = window.exports
    volume = window.session.volume
    ai_layer, _markers = add_ai_result(window.session)
    window.action_registry.menu("File/Export").aboutToShow.emit()
    assert ex.seg_action.isEnabled() and ex.deid_action.isEnabled() and ex.sr_action.isEnabled()

    # the AI result: AUTOMATIC, its model named; the SEG reads back equal on the series' grid
    kind, path = run_export(qtbot, window, lambda: ex.export_seg(str(tmp_path / "ai-seg.dcm"), ai_layer))
    assert kind == "finished" and window.notices.status_label.text() == f"Saved {path}"
    back = read_seg(path, volume)
    assert np.array_equal(back.array, ai_layer.label_map.array) and back.labels == {1: "nodule"}
    assert back.geometry is volume.geometry
    seg = hd.seg.segread(path)
    segment = seg.SegmentSequence[0]
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    assert segment.SegmentationAlgorithmIdentificationSequence[0].AlgorithmName == "Test nodules"
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == volume.meta["series_uid"]
    assert "AI result, not reviewed" in seg.SeriesDescription

    # edited by a user: SEMIAUTOMATIC
    ai_layer.meta.update(edited=True, edited_by="carol", edited_at="2026-02-01T10:00:00+01:00", revision="abc")
    kind, path = run_export(qtbot, window, lambda: ex.export_seg(str(tmp_path / "edited-seg.dcm"), ai_layer))
    assert hd.seg.segread(path).SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"

    # NIfTI of the AI result: labels.json and findings.json (provenance, edited) beside it
    out = tmp_path / "nifti" / "ai.nii.gz"
    kind, value = run_export(qtbot, window, lambda: ex.export_nifti(str(out), ai_layer))
    assert kind == "finished" and value == str(out)
    back = read_label_map(str(out))
    assert np.array_equal(back.array, ai_layer.label_map.array) and back.geometry.is_close(volume.geometry)
    assert json.loads((out.parent / "labels.json").read_text()) == {"1": "nodule"}
    findings = json.loads((out.parent / "findings.json").read_text())
    assert findings["provenance"]["model_id"] == "test-nodules" and findings["provenance"]["model_version"] == "0.9"
    assert findings["input"]["series_uid"] == volume.meta["series_uid"]
    assert findings["edited"] is True and findings["edited_by"] == "carol"
    assert findings["note"] == "AI result, edited, not reviewed"
    assert findings["detections"][0]["diameter_mm"] == 21.0 and findings["structures"][0]["name"] == "nodule"
    assert "labels.json" in window.notices.status_label.text() and "findings.json" in window.notices.status_label.text()
    assert no_temporaries(tmp_path)

    # the demo's whole label map (8 labels, 160 slices): the GUI keeps running while SEG and NIfTI are written
    truth = LabelLayer(demo_labels, name="labels.nii.gz")
    window.session.add_layer(truth)
    qtbot.wait(300)  # its overlays are drawn
    outcomes = []
    ex.finished.connect(lambda kind, value: outcomes.append((kind, value)))
    # the probe collects and freezes first, as the app does once its window is up: once pydicom and highdicom are
    # loaded, a full collection over every object holds the GIL ~0.1-0.2 s, the process's cost, not the export's
    probe = StallProbe().start()
    t0 = time.perf_counter()
    ex.export_seg(str(tmp_path / "truth-seg.dcm"), truth)
    ex.export_nifti(str(tmp_path / "truth" / "labels.nrrd"), truth)
    qtbot.waitUntil(lambda: len(outcomes) == 2, timeout=TIMEOUT_MS)
    stall, elapsed = probe.stop(), time.perf_counter() - t0
    print(f"\nSEG + NRRD of the demo labels: {elapsed:.1f} s, GUI event loop blocked at most {stall * 1000:.0f} ms")
    assert stall < STALL_BOUND_S, f"the GUI event loop stalled {stall * 1000:.0f} ms"
    back = read_seg(str(tmp_path / "truth-seg.dcm"), volume)
    assert np.array_equal(back.array, demo_labels.array) and back.labels == demo_labels.labels
    assert hd.seg.segread(str(tmp_path / "truth-seg.dcm")).SegmentSequence[0].SegmentAlgorithmType == "MANUAL"
    nrrd = read_label_map(str(tmp_path / "truth" / "labels.nrrd"))
    assert np.array_equal(nrrd.array, demo_labels.array) and nrrd.geometry.is_close(volume.geometry)
    assert nrrd.labels == demo_labels.labels
    assert sorted(os.listdir(tmp_path / "truth")) == ["labels.json", "labels.nrrd"]


def test_a_chooser_picks_the_layer_when_there_are_several(window, qtbot, tmp_path, monkeypatch, demo_labels):
    ex = window.exports
    ai_layer, _ = add_ai_result(window.session)
    truth = LabelLayer(demo_labels, name="labels.nii.gz")
    window.session.add_layer(truth)
    asked = []

    def get_item(parent, title, label, items, current, editable):
        asked.append((items, current))
        return items[0], True

    monkeypatch.setattr(ea.QInputDialog, "getItem", get_item)
    monkeypatch.setattr(ea.QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "chosen"), ""))
    kind, path = run_export(qtbot, window, ex.choose_nifti)
    assert asked == [(["1. AI: Test nodules", "2. labels.nii.gz"], 1)]  # the active label layer first
    assert kind == "finished" and path == str(tmp_path / "chosen.nii.gz")  # the format's suffix added
    assert np.array_equal(read_label_map(path).array, ai_layer.label_map.array)


# --- DICOM SR and JSON ------------------------------------------------------------------------------------------------
def test_sr_and_json_hold_the_measurements_the_findings_and_the_review(window, qtbot, tmp_path):
    import highdicom as hd

    from viewer.core import review

    ex = window.exports
    window.action_registry.menu("File/Export").aboutToShow.emit()
    assert not ex.sr_action.isEnabled() and ex.sr_action.toolTip() == ea.NOTHING_MEASURED
    add_ai_result(window.session)
    length = add_length(window)
    result = review.ai_results(window.session)[0]
    review.decide_findings(window.session.annotations, result, [0], "accepted", "bob", "2026-02-04T09:00:00+01:00")
    assert ex.sr_action.isEnabled()

    kind, path = run_export(qtbot, window, lambda: ex.export_sr(str(tmp_path / "sr.dcm")))
    assert kind == "finished" and window.notices.status_label.text() == f"Saved {path}"
    sr = hd.sr.srread(path)
    items = sr_items(sr)
    lengths = [v for t, n, v in items if t == "NUM" and n == "Length"]
    assert lengths == [pytest.approx(length.value, abs=1e-6)]
    assert ("NUM", "Diameter", 21.0) in items and ("NUM", "Volume", 2.1) in items
    texts = [v for t, n, v in items if t == "TEXT"]
    assert any(v.startswith("AI result, accepted by bob") for v in texts)  # the detection's review
    assert any(v == "AI result, not reviewed" for v in texts)  # the structure: the result was not decided
    assert any(n == "Tracking Identifier" and v == "test line" for t, n, v in items)
    assert sr.SeriesDescription.startswith("Measurements (radview)")

    kind, path = run_export(qtbot, window, lambda: ex.export_findings_json(str(tmp_path / "findings.json")))
    doc = json.loads(Path(path).read_text())
    assert kind == "finished"
    assert [m["value"] for m in doc["measurements"]] == [pytest.approx(length.value)]
    assert doc["detections"][0]["diameter_mm"] == 21.0 and doc["detections"][0]["note"].startswith(
        "AI result, accepted by bob")
    assert doc["structures"][0]["name"] == "nodule" and doc["provenance"]["model_id"] == "test-nodules"
    assert doc["source"]["series_uid"] == window.session.volume.meta["series_uid"]
    assert any(k.startswith("detection|test-nodules|") for k in doc["review"])


# --- failures -------------------------------------------------------------------------------------------------------
def test_a_failed_export_is_reported_and_leaves_no_file(window, qtbot, tmp_path, monkeypatch):
    ex = window.exports
    ai_layer, _ = add_ai_result(window.session)
    add_length(window)
    blocker = tmp_path / "file"
    blocker.write_text("")
    kind, message = run_export(qtbot, window, lambda: ex.export_seg(str(blocker / "seg.dcm"), ai_layer))
    assert kind == "failed" and message.startswith("DICOM SEG not written:") and window.notices.last_message == message
    assert window.notices.message_box.isVisible() and not window.notices.message_box.isModal()
    assert run_export(qtbot, window, lambda: ex.export_findings_json(str(tmp_path / "f.txt")))[0] == "refused"
    assert ".json" in window.notices.last_message
    assert run_export(qtbot, window, lambda: ex.export_nifti(str(tmp_path / "a.nhdr")))[0] == "refused"
    assert run_export(qtbot, window, lambda: ex.export_seg(str(tmp_path)))[0] == "refused"  # a folder

    # the image is written, then a sidecar fails: none of the three files is left
    import builtins

    real_open = builtins.open

    def failing_open(file, mode="r", *args, **kwargs):
        if "w" in mode and str(file).endswith("findings.json"):
            raise OSError("disk full")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", failing_open)
    out = tmp_path / "nifti" / "ai.nii.gz"
    kind, message = run_export(qtbot, window, lambda: ex.export_nifti(str(out), ai_layer))
    monkeypatch.setattr(builtins, "open", real_open)
    assert kind == "failed" and "disk full" in message and "NIfTI not written" in window.notices.last_message
    assert os.listdir(out.parent) == []

    import highdicom as hd

    def failing_save(self, path, *args, **kwargs):  # half a file, then the disk fails
        with open(path, "wb") as fh:
            fh.write(b"partial")
        raise OSError("boom")

    monkeypatch.setattr(hd.sr.Comprehensive3DSR, "save_as", failing_save)
    kind, message = run_export(qtbot, window, lambda: ex.export_sr(str(tmp_path / "sr" / "sr.dcm")))
    assert kind == "failed" and "boom" in message
    assert not (tmp_path / "sr" / "sr.dcm").exists()
    assert not [n for n in os.listdir(tmp_path) if n.endswith((".dcm", ".json", ".nii.gz"))]
    assert no_temporaries(tmp_path)


# --- de-identified copy --------------------------------------------------------------------------------------------
def test_deidentified_copy_loads_with_the_same_geometry_and_reports_what_it_skipped(window, qtbot, tmp_path,
                                                                                      demo_paths):
    from viewer.io.dicom_index import scan
    from viewer.io.series_loader import load_series

    ex = window.exports
    assert ex.study_source() == window.opener.index.root == os.path.abspath(str(demo_paths.dicom_dir))
    dicom = Path(demo_paths.dicom_dir)
    files = sorted((dicom / "localizer").glob("*.dcm")) + sorted((dicom / "ct_thin").glob("*.dcm"))[:6]
    src = link_subset(files, tmp_path / "src")
    (src / "notes.txt").write_text("not DICOM")
    out = tmp_path / "copy"
    probe = StallProbe().start()
    kind, report = run_export(qtbot, window, lambda: ex.export_deid(str(out), source=str(src)))
    stall = probe.stop()
    assert kind == "finished" and not report.cancelled and report.n_written == 7
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [("notes.txt", "not a DICOM file")]
    assert stall < STALL_BOUND_S, f"the GUI event loop stalled {stall * 1000:.0f} ms"
    box = ex.message_box
    assert box.isVisible() and not box.isModal()
    assert "8 files: 7 written, 1 skipped (notes.txt: not a DICOM file)" in box.text()
    assert "notes.txt: not a DICOM file" in box.text().split("Skipped:")[1]  # each skipped file, with its reason
    assert "notes.txt: not a DICOM file" in box.detailedText()
    assert "De-identified copy in" in window.notices.status_label.text() and not window.tasks.progress_bar.isVisible()
    box.close()

    before, after = scan(str(src)), scan(str(out))
    assert len(after.series) == len(before.series) == 2
    for old in before.series:
        new = next(e for e in after.series if e.n_images == old.n_images)  # (descriptions are removed)
        assert new.series_uid != old.series_uid and new.shape_zyx == old.shape_zyx
        assert load_series(new).geometry.is_close(load_series(old).geometry)
    ds = pydicom.dcmread(report.written[0].path)
    assert str(ds.PatientName) == "ANONYMOUS" and ds.PatientIdentityRemoved == "YES"

    # a list of files (the open study's files when the folder holds other studies too): one UID map for the run
    kind, report = run_export(qtbot, window, lambda: ex.export_deid(str(tmp_path / "list"),
                                                                  source=[str(f) for f in files[1:]]))
    assert kind == "finished" and report.n_written == 6 and not report.skipped
    assert len({w.series_uid for w in report.written}) == 1
    assert len(scan(str(tmp_path / "list")).series) == 1
    ex.message_box.close()

    # refused: an output folder inside the source
    assert run_export(qtbot, window, lambda: ex.export_deid(str(src / "out"), source=str(src)))[0] == "refused"
    assert "inside the study folder" in window.notices.last_message


def test_cancelling_the_deidentified_copy_keeps_only_complete_files(window, qtbot, tmp_path, demo_paths):
    ex = window.exports
    files = sorted((Path(demo_paths.dicom_dir) / "ct_thin").glob("*.dcm"))[:40]
    src = link_subset(files, tmp_path / "src")
    out = tmp_path / "copy"

    def cancel_at_once(job, done, total, message):
        if job == ex.deid_job and window.tasks.cancel_button.isEnabled():
            assert window.tasks.progress_bar.isVisible() and window.tasks.cancel_button.isVisible()
            qtbot.mouseClick(window.tasks.cancel_button, Qt.LeftButton)

    window.tasks.progressed.connect(cancel_at_once)
    kind, report = run_export(qtbot, window, lambda: ex.export_deid(str(out), source=str(src)))
    window.tasks.progressed.disconnect(cancel_at_once)
    assert kind == "finished" and report.cancelled
    assert 1 <= report.n_processed < 40 and report.n_written == report.n_processed
    assert f"Cancelled after {report.n_processed} of 40 files" in ex.message_box.text()
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) == report.n_written and no_temporaries(out)
    for p in written:
        assert pydicom.dcmread(p).pixel_array.shape == (512, 512)
    assert ex.deid_action.isEnabled() and ex.deid_job is None and not window.tasks.cancel_button.isVisible()
    ex.message_box.close()

    # closing the window while a copy runs stops it (no thread left running: the conftest checks)
    ex.export_deid(str(tmp_path / "closing"), source=str(src))
    assert ex.deid_job is not None and not ex.deid_action.isEnabled()
    window.close()
