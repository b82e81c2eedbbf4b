"""``radview-cli index --json`` and ``screenshot`` on 2D series (issue 14): kinds, display objects, pictures."""
from __future__ import annotations

import json

import numpy as np
import pytest
from planar_cases import chest_pixels, mammography_study, us_region, write_radiograph, write_ultrasound
from pydicom import Sequence
from pydicom.uid import generate_uid
from PySide6.QtGui import QImage

from viewer.cli.main import main


def run(capsys, *args) -> str:
    assert main([str(a) for a in args]) == 0
    return capsys.readouterr().out


def index_json(capsys, folder) -> dict:
    return json.loads(run(capsys, "index", folder, "--json"))


def gray(path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format_Grayscale8)
    w, h = image.width(), image.height()
    return np.frombuffer(image.constBits(), dtype=np.uint8).reshape(h, image.bytesPerLine())[:, :w].copy()


def test_index_json_kinds_and_display_objects(capsys, tmp_path):
    write_radiograph(tmp_path / "s", "cr.dcm", PatientOrientation=["L", "F"], ImagerPixelSpacing=[0.2, 0.2],
                     EstimatedRadiographicMagnificationFactor=1.25)
    write_ultrasound(tmp_path / "s", "cine.dcm", frames=20, FrameTime=40.0,
                     SequenceOfUltrasoundRegions=Sequence([us_region(0, 0, 639, 479, 0.05)]))
    series = generate_uid()
    write_radiograph(tmp_path / "s", "p1.dcm", series_uid=series, number=1)
    write_radiograph(tmp_path / "s", "p2.dcm", chest_pixels()[::2, ::2], series_uid=series, number=2)
    payload = index_json(capsys, tmp_path / "s")
    kinds = sorted(s["kind"] for s in payload["series"])
    assert kinds == ["cine", "projection", "stack"]
    by_kind = {s["kind"]: s for s in payload["series"]}
    cr = by_kind["projection"]["images"][0]["display"]
    assert cr["orientation"] == {"right": "L", "left": "R", "bottom": "F", "top": "H"}
    assert cr["calibration"] == "ImagerPixelSpacing/ERMF" and cr["pixel_spacing_mm"] == [0.16, 0.16]
    assert cr["photometric"] == "MONOCHROME1" and cr["frames"] == 1 and cr["frame_time_ms"] is None
    cine = by_kind["cine"]["images"][0]["display"]
    assert cine["frames"] == 20 and cine["frame_time_ms"] == 40.0 and cine["calibration"] == "UltrasoundRegion"
    assert cine["pixel_spacing_mm"] == [0.5, 0.5] and cine["orientation"] is None
    stack = by_kind["stack"]["images"]
    assert [i["instance_number"] for i in stack] == [1, 2] and stack[0]["rows"] != stack[1]["rows"]
    assert all(i["display"]["calibration"] == "none" and i["display"]["pixel_spacing_mm"] is None for i in stack)


def test_screenshot_of_a_monochrome1_radiograph_equals_the_inverted_monochrome2_one(capsys, tmp_path):
    """The same anatomy stored both ways renders the same: bone bright in both."""
    pixels = chest_pixels()
    top = int(pixels.max())
    window = dict(WindowCenter=int(np.median(pixels)), WindowWidth=int(np.ptp(pixels)), PatientOrientation=["L", "F"])
    write_radiograph(tmp_path / "m1", "a.dcm", **window)
    window["WindowCenter"] = top - window["WindowCenter"]
    write_radiograph(tmp_path / "m2", "a.dcm", (top - pixels).astype(np.uint16), photometric="MONOCHROME2", **window)
    for name in ("m1", "m2"):
        run(capsys, "screenshot", tmp_path / name, "--out", tmp_path / f"{name}.png", "--size", "400x400")
    a, b = gray(tmp_path / "m1.png").astype(int), gray(tmp_path / "m2.png").astype(int)
    body = (slice(60, 340), slice(80, 320))  # the image, away from the corner texts
    assert np.abs(a[body] - b[body]).mean() < 2.0
    assert a[body].std() > 20  # an image, not a blank


def test_screenshot_frame_and_image_options(capsys, tmp_path):
    write_ultrasound(tmp_path / "c", "cine.dcm", frames=20, FrameTime=40.0)
    run(capsys, "screenshot", tmp_path / "c", "--frame", 1, "--out", tmp_path / "f1.png", "--size", "320x240")
    run(capsys, "screenshot", tmp_path / "c", "--frame", 11, "--out", tmp_path / "f11.png", "--size", "320x240")
    f1, f11 = gray(tmp_path / "f1.png"), gray(tmp_path / "f11.png")
    assert np.abs(f1[40:200].astype(int) - f11[40:200].astype(int)).mean() > 1.0  # another frame is shown
    assert main(["screenshot", str(tmp_path / "c"), "--frame", "21", "--out", str(tmp_path / "x.png")]) != 0
    assert "out of range" in capsys.readouterr().err


def test_screenshot_of_a_mammography_study_is_the_hanging(capsys, tmp_path):
    mammography_study(tmp_path / "mg")
    run(capsys, "screenshot", tmp_path / "mg", "--out", tmp_path / "mg.png", "--size", "600x600")
    picture = gray(tmp_path / "mg.png")
    # four views in a 2 × 2 grid: each quadrant holds an image
    for quadrant in (picture[:300, :300], picture[:300, 300:], picture[300:, :300], picture[300:, 300:]):
        assert quadrant.std() > 10


@pytest.mark.parametrize("bad", ["--image", "--frame"])
def test_image_and_frame_options_are_refused_on_volumes(capsys, tmp_path, bad):
    from viewer.demo import ensure_demo

    demo = ensure_demo()
    assert main(["screenshot", str(demo.dicom_dir), bad, "1", "--out", str(tmp_path / "never.png")]) != 0
    assert "2D series" in capsys.readouterr().err
