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
