"""File → Export → Report (PDF) and ``radview-cli export report``: one A4 page with key images, the AI findings with
their numbers, provenance and review state, the user's measurements; de-identified unless asked; atomic.

The PDF's text is read with ``pdftotext`` (poppler-utils, installed by scripts/setup.sh) where it is installed,
else with a small reader of Qt's own PDFs (Type0 fonts with ToUnicode maps). Comparisons ignore whitespace.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from ai.api import Detection, InferenceResult, Provenance, StructureFeatures
from viewer.core.ai_bridge import layers_from_result
from viewer.core.annotations import new_annotation

ROOT = Path(__file__).resolve().parents[2]
NAME, PATIENT_ID, BIRTH = "Demo Phantom", "RADVIEW-DEMO", "1970-01-01"
TITLE = "radview report — research use, not for clinical use"


# --- reading a PDF ----------------------------------------------------------------------------------------
def qt_pdf_text(data: bytes) -> str:
    """The text of a PDF written by Qt (Type0 fonts with ToUnicode CMaps), glyph by glyph."""
    objects = {int(m.group(1)): m.group(2) for m in re.finditer(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}

    def stream(body: bytes) -> bytes | None:
        m = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S)
        if m is None:
            return None
        return zlib.decompress(m.group(1)) if b"/FlateDecode" in body[:m.start()] else m.group(1)

    def utf16(hexs: bytes) -> str:
        return bytes.fromhex(hexs.decode()).decode("utf-16-be")

    def cmap(body: bytes) -> dict:
        out, text = {}, stream(body) or b""
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
            for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                out[int(src, 16)] = utf16(dst)
        for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
            pattern = rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(\[[^\]]*\]|<[0-9A-Fa-f]+>)"
            for lo, hi, rest in re.findall(pattern, block):
                lo, hi = int(lo, 16), int(hi, 16)
                if rest.startswith(b"["):
                    for i, dst in enumerate(re.findall(rb"<([0-9A-Fa-f]+)>", rest)):
                        out[lo + i] = utf16(dst)
                else:
                    first = utf16(rest[1:-1])
                    for i in range(hi - lo + 1):
                        out[lo + i] = first[:-1] + chr(ord(first[-1]) + i)
        return out

    fonts = {num: cmap(objects[int(m.group(1))]) for num, body in objects.items()
             if b"/Type0" in body and (m := re.search(rb"/ToUnicode (\d+) 0 R", body))}
    names = {name: fonts[int(num)] for block in re.findall(rb"/Font\s*<<(.*?)>>", data, re.S)
             for name, num in re.findall(rb"/(\w+)\s+(\d+) 0 R", block) if int(num) in fonts}
    text = []
    for body in objects.values():
        content = stream(body) if b"/Subtype" not in body.split(b"stream")[0] else None
        if not content or b" Tf" not in content:
            continue
        current: dict = {}
        for m in re.finditer(rb"/(\w+)\s+[\d.]+\s+Tf|<([0-9A-Fa-f]*)>\s*Tj|\bET\b", content):
            if m.group(1):
                current = names.get(m.group(1), {})
            elif m.group(2) is not None:
                hexs = m.group(2).decode()
                text.extend(current.get(int(hexs[i:i + 4], 16), "?") for i in range(0, len(hexs), 4))
            else:
                text.append("\n")
    return "".join(text)


def pdf_text(path) -> str:
    """The PDF's text with all whitespace removed (line breaks and column gaps differ between readers)."""
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    else:
        text = qt_pdf_text(Path(path).read_bytes())
    return re.sub(r"\s+", "", text)


def has(text: str, *needles: str) -> bool:
    return all(re.sub(r"\s+", "", n) in text for n in needles)


def page_count(path) -> int:
    data = Path(path).read_bytes()
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", data))


def check_pdf(path) -> str:
    data = Path(path).read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert page_count(path) == 1
    if shutil.which("pdfinfo"):
        info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
        assert re.search(r"Pages:\s+1\b", info) and "A4" in info
    return pdf_text(path)


# --- the window --------------------------------------------------------------------------------------------
@pytest.fixture
def window(demo_series_window):
    return demo_series_window


PROV = Provenance("test-nodules", "Test nodules", "0.9", "classical image analysis, not a learned network", "cpu",
                  "float32", 0.2, "2026-01-01T00:00:00Z", {"threshold": 0.5})


def add_ai_result(session, n_detections: int = 1):
    """An AI result on the axial slice shown: a nodule box (label 1), its detection(s) and a structure."""
    volume = session.volume
    g = volume.geometry
    k = int(round(session.cursor_index()[0]))
    labels = np.zeros(g.shape_zyx, np.uint8)
    labels[k - 3:k + 4, 200:236, 330:370] = 1
    centre = tuple(g.index_to_world((k, 218, 350)))
    dets = tuple(Detection((centre[0] + i, centre[1], centre[2]), 21.0 - i * 0.1, 2.1, 38.0, "solid", 0.87,
                           "nodule", "lung_left") for i in range(n_detections))
    structure = StructureFeatures(1, "nodule", 10080, 13.57, centre, 29.4, 31.6, 0.71, 38.0, 12.0, -20.0, 90.0)
    result = InferenceResult(g, PROV, labels, {1: "nodule"}, dets, structures=(structure,))
    label_layer, marker_layer = layers_from_result(result, g)
    session.add_layer(label_layer)
    session.add_layer(marker_layer)
    return label_layer, marker_layer


def add_length(session, view):
    points = [view.plane.to_world(view.k, 300, c) for c in (150, 260)]
    return session.annotations.add(new_annotation("length", points, view.annotation_overlay.view_plane(),
                                                  series_uid=session.volume.meta["series_uid"], label="test line"))


def test_report_from_the_window(window, qtbot, tmp_path):
    add_ai_result(window.session)
    length = add_length(window.session, window.layout_widget.views["axial"])
    qtbot.wait(50)
    views = window.layout_widget.views
    before = {n: (v.k, v.vb.viewRange(), v.corner_texts(), v.size()) for n, v in views.items()}
    events = []
    s = window.session
    for sig in (s.display_changed, s.cursor_moved, s.window_changed, s.layer_changed, s.layer_added,
                s.annotations.annotations_reset):
        sig.connect(lambda *_a, name=sig.name: events.append(name))
    with qtbot.waitSignal(window.notices.exported, timeout=30000) as done:
        path = window.export_report(str(tmp_path / "report.pdf"), wait=False)  # painted on a worker thread
    assert done.args == [path] and os.path.isfile(path)
    # the key images were drawn by detached copies of the views: nothing on screen or in the session moved
    assert events == [] and before == {n: (v.k, v.vb.viewRange(), v.corner_texts(), v.size())
                                       for n, v in views.items()}
    text = check_pdf(path)
    assert has(text, TITLE, "Not a diagnosis")
    # the finding's numbers, the structure's, the measurement's, each AI row marked, the provenance
    assert has(text, "N1", "solid", "21.0", "2.10", "38", "0.87", "left lung")
    assert has(text, "nodule", "13.6", "29.4", "31.6")
    assert has(text, "length", "test line", f"{length.value:.1f} mm", "user measurement")
    assert text.count(re.sub(r"\s+", "", "AI result, not reviewed")) >= 3  # detection row, structure row, provenance
    assert has(text, "Test nodules", "test-nodules", "version 0.9", "classical image analysis", "device: cpu",
               "2026-01-01T00:00:00Z", "threshold=0.5")
    assert has(text, "radview demo chest CT", "Chest 2.0 mm")  # study and series description
    for secret in (NAME, PATIENT_ID, BIRTH, "19700101"):
        assert secret.replace(" ", "") not in text
    raw = Path(path).read_bytes()
    assert b"Phantom" not in raw and b"RADVIEW-DEMO" not in raw  # nor in the metadata


def test_patient_data_on_request_and_the_review_state(window, qtbot, tmp_path):
    review = pytest.importorskip("viewer.core.review")
    add_ai_result(window.session, n_detections=2)
    result = review.ai_results(window.session)[0]
    review.decide_findings(window.session.annotations, result, [0], "accepted", "bob", "2026-02-04T09:00:00+01:00")
    review.decide_result(window.session.annotations, result, "accepted", "alice", "2026-02-03T10:00:00+01:00")
    path = window.export_report(str(tmp_path / "with_patient.pdf"), include_patient_data=True)
    text = check_pdf(path)
    assert has(text, NAME, PATIENT_ID, BIRTH)
    assert has(text, "AI result, accepted by bob (2026-02-04)", "AI result, accepted by alice (2026-02-03)")
    # N2's row, the provenance, the two key images' overlay captions and the footer's explanation
    assert text.count(re.sub(r"\s+", "", "AI result, not reviewed")) == 5
    review.decide_findings(window.session.annotations, result, [1], "rejected", "bob", "2026-02-05T09:00:00+01:00")
    text = check_pdf(window.export_report(str(tmp_path / "reviewed.pdf")))
    assert has(text, "AI result, rejected by bob (2026-02-05)", "AI result, reviewed by bob (2026-02-05)")
    assert text.count(re.sub(r"\s+", "", "AI result, not reviewed")) == 1  # only the footer's explanation


def test_review_state_from_the_layers_meta_alone(demo_volume):
    """Exporters read ``reviewed_by`` / ``reviewed_at`` / ``detection_review`` from the layers' meta."""
    from viewer.core.layers import MarkerLayer
    from viewer.export import AI_NOT_REVIEWED
    from viewer.logic.report_content import ai_results_from_layers, detection_table, provenance_lines

    det = Detection((1.0, 2.0, 3.0), 8.0, 0.3, 20.0, "solid", 0.7, "nodule", "lung_right")
    layer = MarkerLayer([], name="AI: X findings", meta={"provenance": PROV, "detections": (det, det),
                                                         "detection_review": ("rejected", None)})
    (res,), _ = ai_results_from_layers([layer])
    assert res.detection_notes == ["AI result, rejected", AI_NOT_REVIEWED]
    assert detection_table([res]).rows[1][-1] == AI_NOT_REVIEWED
    layer.meta.update(reviewed_by="alice", reviewed_at="2026-02-03T10:00:00Z", review_state="reviewed")
    (res,), _ = ai_results_from_layers([layer])
    assert res.detection_notes == ["AI result, rejected", "AI result, reviewed by alice (2026-02-03)"]
    assert provenance_lines([res])[0][1] is False  # reviewed: not flagged


def test_many_findings_still_fit_on_one_page(window, qtbot, tmp_path):
    add_ai_result(window.session, n_detections=60)
    text = check_pdf(window.export_report(str(tmp_path / "many.pdf")))
    assert has(text, "N1", "AI findings (detections) (60)", "more not shown on this page")
    assert has(text, "Provenance of the AI results", "Not a diagnosis")


def test_a_failed_report_leaves_no_file(window, qtbot, tmp_path, monkeypatch):
    assert window.export_report(str(tmp_path / "report.txt")) is None and ".pdf" in window.notices.last_message
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert window.export_report(str(blocker / "r.pdf")) is None and "Report not saved" in window.notices.last_message
    monkeypatch.setattr("viewer.qt.capture.report.paint_report", lambda *a: (_ for _ in ()).throw(RuntimeError("boom")))
    with qtbot.waitSignal(window.tasks.finished, timeout=20000):
        window.export_report(str(tmp_path / "r.pdf"), wait=False)
    assert "boom" in window.notices.last_message and "Report not saved" in window.notices.last_message
    left = [n for n in os.listdir(tmp_path) if n.endswith((".pdf", ".txt")) or n.startswith(".radview-tmp")]
    assert left == [], left


# --- the command line ---------------------------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", "export", "report", *args], capture_output=True,
                          text=True, env=env, timeout=180)


@pytest.fixture(scope="module")
def findings_file(tmp_path_factory, demo_paths):
    nodules = json.loads(Path(demo_paths.nodules_json).read_text())
    dets = [{"center_lps_mm": n["center_lps_mm"], "diameter_mm": n["diameter_mm"] - 0.3,
             "volume_ml": round(np.pi / 6 * (n["diameter_mm"] / 10) ** 3, 3), "mean_hu": -25.0 - i, "kind": n["type"],
             "score": round(0.95 - 0.05 * i, 2), "label": "nodule", "location": n["label"], "features": {}}
            for i, n in enumerate(nodules)]
    doc = {"provenance": PROV.as_dict(), "input": {"series_uid": demo_paths.ct_series_uid},
           "detections": dets, "structures": [], "messages": []}
    path = tmp_path_factory.mktemp("findings") / "findings.json"
    path.write_text(json.dumps(doc))
    return path, dets


def test_cli_report(demo_paths, findings_file, tmp_path):
    path, dets = findings_file
    measurements = tmp_path / "measurements.json"
    measurements.write_text(json.dumps({"measurements": [], "review": {
        "detection:1": {"state": "rejected", "user": "carol", "time": "2026-03-01T08:00:00Z"}}}))
    out = tmp_path / "out" / "report.pdf"
    result = run_cli(str(demo_paths.dicom_dir), "--series", demo_paths.ct_series_uid, "--labels",
                     str(demo_paths.labels_nii), "--findings", str(path), "--measurements", str(measurements),
                     "--preset", "lung", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and str(out) in result.stdout
    text = check_pdf(out)
    assert has(text, TITLE, "Not a diagnosis", "De-identified")
    first = dets[0]
    assert has(text, f"{first['diameter_mm']:.1f}", f"{first['volume_ml']:.2f}", f"{first['score']:.2f}",
               f"{first['mean_hu']:.0f}")
    assert has(text, "AI result, not reviewed", "AI result, rejected by carol (2026-03-01)")
    assert has(text, "Test nodules", "version 0.9", "left lung")
    for secret in (NAME, PATIENT_ID, BIRTH):
        assert secret.replace(" ", "") not in text
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.pdf"]  # no temporary file left

    shown = tmp_path / "shown.pdf"
    assert run_cli(str(demo_paths.dicom_dir), "--series", demo_paths.ct_series_uid, "--show-patient-data",
                   "--out", str(shown)).returncode == 0
    assert has(check_pdf(shown), NAME, PATIENT_ID)


def test_cli_report_errors_are_one_clear_line(demo_paths, tmp_path):
    bad = run_cli(str(demo_paths.dicom_dir), "--out", str(tmp_path / "r.png"))
    assert bad.returncode == 2 and ".pdf" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli(str(demo_paths.dicom_dir), "--preset", "bnoe", "--out", str(tmp_path / "r.pdf"))
    assert bad.returncode == 2 and "bnoe" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli(str(demo_paths.dicom_dir), "--findings", str(tmp_path / "missing.json"), "--out",
                  str(tmp_path / "r.pdf"))
    assert bad.returncode == 2 and "missing.json" in bad.stderr
    assert not list(tmp_path.iterdir())


# --- close-ups: the window suited to the finding, labels as outlines, none dropped without a word ---------------
def to_array(image) -> np.ndarray:
    """``(h, w, 3)`` int16 RGB of a QImage."""
    from PySide6.QtGui import QImage

    img = image.convertToFormat(QImage.Format_RGB888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return arr[:, : 3 * w].reshape(h, w, 3).astype(np.int16)


def finding_record(centre, provenance=PROV, location="", diameter=10.0, score=0.9):
    from viewer.logic.report_content import ai_result_from_findings

    det = {"center_lps_mm": [float(v) for v in centre], "diameter_mm": diameter, "score": score, "kind": "solid",
           "label": "finding", "location": location}
    return ai_result_from_findings({"provenance": provenance.as_dict(), "detections": [det], "structures": []})


def lung_point(labels, value: int = 2):
    """A point well inside label ``value`` (2: lung_left) of the demo, 12 voxels from its edges."""
    from scipy import ndimage

    inner = ndimage.binary_erosion(labels.array == value, iterations=12)
    idx = np.argwhere(inner)
    return labels.geometry.index_to_world(idx[len(idx) // 2])


def test_a_lung_closeup_is_in_the_lung_window_with_outlines_not_fill(qapp, demo_volume, demo_labels):
    from viewer.core.layers import LabelLayer
    from viewer.qt.capture.closeups import crop_mm, finding_images
    from viewer.qt.views.slice_image import SliceRequest, render_slice

    layer = LabelLayer(demo_labels, name="labels.nii.gz")  # opacity 0.4: the reading views' fill
    centre = lung_point(demo_labels)
    record = finding_record(centre)  # a model without "lung" in its name, no location: the lung label says it
    (closeup,), refs = finding_images(demo_volume, [layer], [record], 400.0, 40.0, "from file", px=400)
    assert "W 1500 L -600 (lung)" in closeup.caption and refs[0].name == "N1"
    got = to_array(closeup.image)
    req = SliceRequest("axial", center_lps=tuple(centre), crop_mm=crop_mm(record.detections[0]), size=(400, 400),
                       width=1500, level=-600, letters=False, font_px=20)
    bare, _k = render_slice(demo_volume, req, [], [refs[0].marker])  # the same crop, lung window, no labels
    differ = np.abs(got - to_array(bare)).max(axis=-1) > 10
    assert differ.mean() < 0.05  # the image itself is what shows: only outlines drawn over it
    lung_colour = np.abs(got - np.array(layer.colors[2])).max(axis=-1) < 40
    assert 0 < lung_colour.mean() < 0.05  # the lung label drawn as an outline, not as a fill over the crop
    filled, _k = render_slice(demo_volume, req, [layer], [refs[0].marker])  # what a fill would have done
    assert (np.abs(to_array(filled) - to_array(bare)).max(axis=-1) > 10).mean() > 0.5


def test_other_findings_keep_the_series_window(qapp, demo_volume, demo_labels):
    from viewer.core.layers import LabelLayer
    from viewer.qt.capture.closeups import finding_images

    centre = lung_point(demo_labels, 5)  # inside the heart, away from the lungs
    liver = Provenance("test-cardiac", "Test cardiac", "1.0", "classical image analysis, not a learned network",
                       "cpu", "float32", 0.1, "2026-01-01T00:00:00Z", {})
    images, _refs = finding_images(demo_volume, [LabelLayer(demo_labels)], [finding_record(centre, liver)], 400.0,
                                   40.0, "from file", px=200)
    assert "W 400 L 40 (from file)" in images[0].caption
    images, _refs = finding_images(demo_volume, [], [finding_record(centre, liver, location="lung_right")], 400.0,
                                   40.0, "from file", px=200)
    assert "W 1500 L -600 (lung)" in images[0].caption  # the model says it lies in the lung


def test_the_page_uses_its_free_space_before_dropping_a_closeup():
    from viewer.logic.report_layout import TableSize, plan_page

    tables = [TableSize(6), TableSize(4), TableSize(0)]
    common = dict(width=182.0, key_natural_h=71.0, key_caption_h=9.0, crop_caption_h=9.0, note_h=3.5,
                  tables=tables, row_h=3.8, title_h=4.3)
    # room for the tables, the key images and four close-ups at full size: all shown, tables whole
    plan = plan_page(215.0, n_crops=4, n_findings=4, **common)
    assert plan.shown == 4 and plan.table_rows == [6, 4, 0] and plan.cols == 4
    # tight: all six still shown (smaller, in one row) before any is dropped
    plan = plan_page(170.0, n_crops=6, n_findings=6, **common)
    assert plan.shown == 6 and plan.cols == 6
    # too tight for all: as many as fit (one row of six; a second row does not fit), the line naming the others
    # counted in, and the page's space used (the key images grow into what the tables leave)
    plan = plan_page(190.0, n_crops=12, n_findings=20, **common)
    assert plan.shown == 6 and plan.crops_h > plan.crop_w + 9.0 + 3.0  # the row and the line
    assert plan.key_h > 60.0


def test_many_findings_name_the_closeups_not_shown(window, qtbot, tmp_path):
    add_ai_result(window.session, n_detections=20)
    text = check_pdf(window.export_report(str(tmp_path / "many.pdf")))
    shown = len(re.findall(r"N\d+:[\d.]+mm,score", text))
    m = re.search(r"(\d+)morefindingsnotshownasclose-ups:N\d+", text)
    assert m, "the close-ups left out are not named"
    assert 6 <= shown <= 12 and shown + int(m.group(1)) == 20


# --- structures that are sets of pieces ---------------------------------------------------------------------------
def balls(shape=(40, 120, 120), spacing=(2.0, 1.0, 1.0), centres=((20, 20, 20), (20, 60, 90), (20, 100, 30)),
          radii=(8, 5, 3)):
    from radview_base.geometry import Geometry
    from viewer.io.volume import LabelMap

    z, y, x = np.indices(shape)
    array = np.zeros(shape, np.uint8)
    for (cz, cy, cx), r in zip(centres, radii):
        array[((z - cz) * spacing[0]) ** 2 + ((y - cy) * spacing[1]) ** 2 + ((x - cx) * spacing[2]) ** 2
              <= r * r] = 8
    return LabelMap(array, Geometry(shape, spacing, (0.0, 0.0, 0.0), np.eye(3)), {8: "nodule"})


def test_a_structure_of_separate_pieces_is_measured_piece_by_piece():
    from viewer.logic.report_content import ai_record, structure_table
    from viewer.logic.structure_pieces import structure_pieces

    label_map = balls()
    whole = {"label": 8, "name": "nodule", "volume_ml": 3.0, "axial_diameter_mm": 95.0, "diameter_3d_mm": 95.1,
             "mean_hu": -100.0, "sd_hu": 50.0, "component": 0}
    pieces = structure_pieces([whole], [], label_map)[0]
    assert pieces.count == 3 and pieces.largest_3d == pytest.approx(16.0, abs=0.5)
    record = ai_record("AI: Test nodules", PROV.as_dict(), [], [whole])
    record.pieces = {0: pieces}
    table = structure_table([record])
    assert table.rows[0][0] == "nodule (3 pieces)" and "95" not in "".join(table.rows[0][2:4])
    assert table.rows[0][3] == "largest 16.0"
    assert table.notes and table.notes[0].startswith("nodule: 3 pieces, largest 16.0 mm")
    # one object with a speck beside it (a lung mask): its own diameter stands
    single = balls(centres=((20, 60, 60), (20, 61, 75)), radii=(30, 1))
    whole_single = dict(whole, diameter_3d_mm=60.0)
    assert structure_pieces([whole_single], [], single) == {}
    # without the label map: the result's detections of that kind are the pieces
    dets = [{"label": "nodule candidate", "diameter_mm": d, "features": {"diameter_3d_mm": d + 1.0}}
            for d in (20.0, 9.0, 6.0)]
    pieces = structure_pieces([whole], dets, None)[0]
    assert pieces.count == 3 and pieces.largest_3d == 21.0 and pieces.source == "detections"


def test_cli_labels_and_findings_of_two_runs_each_with_its_own_provenance(demo_paths, tmp_path):
    """Lungs from one run, nodules from another (its own label map beside its findings.json: three separate
    candidates of one "nodule" label, recorded as one 254.9 mm structure)."""
    from viewer.io.image_io import read_label_map, write_image
    from viewer.io.volume import LabelMap

    truth = read_label_map(str(demo_paths.labels_nii))
    lungs_dir, nodules_dir = tmp_path / "lungs", tmp_path / "nodules"
    lungs_dir.mkdir()
    nodules_dir.mkdir()
    lungs = np.where(np.isin(truth.array, (2, 3, 4)), truth.array, 0).astype(np.uint8)
    write_image(LabelMap(lungs, truth.geometry, {2: "lung_left", 3: "lung_right", 4: "airway"}),
                str(lungs_dir / "labels.nii.gz"))
    (lungs_dir / "labels.json").write_text(json.dumps({"2": "lung_left", "3": "lung_right", "4": "airway"}))
    lung_prov = Provenance("test-lungs", "Test lungs", "2.1", "classical image analysis, not a learned network",
                           "cpu", "float32", 1.0, "2026-01-02T00:00:00Z", {})
    structures = [{"label": 2, "name": "lung_left", "voxels": 1, "volume_ml": 1983.3, "axial_diameter_mm": 158.4,
                   "diameter_3d_mm": 280.4, "sphericity": 0.5, "mean_hu": -785.0, "sd_hu": 164.0, "component": 0,
                   "centroid_lps_mm": [72.0, 8.0, -77.0]}]
    input_ = {"series_uid": demo_paths.ct_series_uid}
    (lungs_dir / "findings.json").write_text(json.dumps({"provenance": lung_prov.as_dict(), "input": input_,
                                                         "detections": [], "structures": structures}))
    nodules = np.where(truth.array == 8, 8, 0).astype(np.uint8)
    write_image(LabelMap(nodules, truth.geometry, {8: "nodule"}), str(nodules_dir / "labels.nii.gz"))
    truth_nodules = json.loads(Path(demo_paths.nodules_json).read_text())
    dets = [{"center_lps_mm": n["center_lps_mm"], "diameter_mm": n["diameter_mm"], "volume_ml": 1.0,
             "mean_hu": -30.0, "kind": n["type"], "score": 0.9 - 0.1 * i, "label": "nodule candidate",
             "location": "", "features": {}} for i, n in enumerate(truth_nodules)]
    nodule_structure = {"label": 8, "name": "nodule", "voxels": 1, "volume_ml": 13.8, "axial_diameter_mm": 31.0,
                        "diameter_3d_mm": 254.9, "sphericity": 0.57, "mean_hu": -156.0, "sd_hu": 230.0,
                        "component": 0, "centroid_lps_mm": [33.0, 19.7, -112.2]}
    (nodules_dir / "findings.json").write_text(json.dumps({"provenance": PROV.as_dict(), "input": input_,
                                                           "detections": dets, "structures": [nodule_structure]}))
    out = tmp_path / "report.pdf"
    result = run_cli(str(demo_paths.dicom_dir), "--series", demo_paths.ct_series_uid, "--labels",
                     str(lungs_dir / "labels.nii.gz"), "--findings", str(nodules_dir / "findings.json"),
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    text = check_pdf(out)
    # each overlay with its own model and version
    assert has(text, "AI: Test lungs: model Test lungs (test-lungs) version 2.1",
               "AI: Test nodules: model Test nodules (test-nodules) version 0.9")
    assert has(text, "left lung", "1983", "AI: Test lungs")  # the lungs' structure row, of the lung model
    # the nodule "structure" per piece, not one 254.9 mm object
    n = len(truth_nodules)
    assert has(text, f"nodule ({n} pieces)", f"nodule: {n} pieces, largest")
    assert "254.9" not in text and not re.search(r"nodule\(\d+pieces\)13\.8255", text)
    # the close-ups: lung findings (a lung label under them, or a nodule of the nodule model in the lung) in the
    # lung window, while the key images keep the series' window
    assert has(text, "W 400 L 40 (from file)", "W 1500 L -600 (lung)")
