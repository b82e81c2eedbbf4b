"""Measurements in patient coordinates (viewer/core/annotations.py, measurements.py, undo.py): values by hand."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.core import measurements as m
from viewer.core.annotations import (
    STATS_KEYS,
    Annotation,
    AnnotationFormatError,
    AnnotationSet,
    Plane,
    display_text,
    measured,
    new_annotation,
    study_key,
)
from viewer.core.session import Session
from viewer.io.volume import Volume

# anisotropic on purpose: slices 2.0 mm, rows 0.6 mm, columns 0.8 mm
GEOM = Geometry((20, 60, 80), (2.0, 0.6, 0.8), (-30.0, 12.0, 100.0))
AXIAL = Plane((0, 0, 1), GEOM.index_to_world((7, 0, 0)))
CORONAL = Plane((0, 1, 0), GEOM.index_to_world((0, 30, 0)))


def _volume(geometry=GEOM, seed=0, series="1.2.3.4", study="1.2.3") -> Volume:
    rng = np.random.default_rng(seed)
    arr = rng.normal(40, 25, size=geometry.shape_zyx).round().astype(np.int16)
    return Volume(arr, geometry, meta={"modality": "CT", "series_uid": series, "study_uid": study})


def at(*index_zyx) -> np.ndarray:
    return GEOM.index_to_world(index_zyx)


# --- values by hand ------------------------------------------------------------------------
def test_length_on_an_anisotropic_grid():
    # 20 rows (0.6 mm) and 20 columns (0.8 mm) apart on one axial slice: sqrt(12² + 16²) = 20 mm
    assert m.length_mm([at(3, 10, 5), at(3, 30, 25)]) == pytest.approx(20.0)
    # 8 slices apart along z only: 8 × 2.0 mm
    assert m.length_mm([at(1, 10, 5), at(9, 10, 5)]) == pytest.approx(16.0)
    # rotating the grid moves the points but not the distance
    c, s = math.cos(0.4), math.sin(0.4)
    rotated = Geometry(GEOM.shape_zyx, GEOM.spacing_zyx, GEOM.origin_lps, ((c, -s, 0), (s, c, 0), (0, 0, 1)))
    a, b = rotated.index_to_world((3, 10, 5)), rotated.index_to_world((3, 30, 25))
    assert m.length_mm([a, b]) == pytest.approx(20.0)
    assert not np.allclose(a, at(3, 10, 5))


def test_angle_of_known_degrees():
    v = np.array([5.0, -3.0, 8.0])
    p60 = [v + (10, 0, 0), v, v + (10 * math.cos(math.radians(60)), 10 * math.sin(math.radians(60)), 0)]
    assert m.angle_deg(p60) == pytest.approx(60.0)
    assert m.angle_deg([v + (1, 0, 0), v, v + (0, 0, 7)]) == pytest.approx(90.0)
    assert m.angle_deg([v + (1, 0, 0), v, v - (3, 0, 0)]) == pytest.approx(180.0)
    # on the coronal plane of the anisotropic grid: one arm 10 columns (8 mm) along x,
    # the other 4 slices (8 mm) up and 10 columns across: 45°
    assert m.angle_deg([at(7, 30, 50), at(7, 30, 40), at(11, 30, 50)]) == pytest.approx(45.0)
    # one arm 5 slices (10 mm) up, 10 columns (8 mm) across: atan(10/8)
    assert m.angle_deg([at(7, 30, 50), at(7, 30, 40), at(12, 30, 50)]) == pytest.approx(math.degrees(math.atan(10 / 8)))


def _circle(centre, radius, right, down):
    centre, right, down = (np.asarray(v, float) for v in (centre, right, down))
    return m.ellipse_from_corners(centre - radius * (right + down), centre + radius * (right + down), right, down)


@pytest.mark.parametrize("plane", ["axial", "coronal"])
def test_ellipse_roi_stats_match_numpy_on_a_known_disk(plane):
    vol = _volume()
    arr = vol.array
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in GEOM.shape_zyx), indexing="ij")
    radius = 9.0
    if plane == "axial":  # slice z = 7, centre row 30, column 40; the disk in (y, x) millimetres
        centre, right, down, normal = at(7, 30, 40), (1, 0, 0), (0, 1, 0), (0, 0, 1)
        truth = (zz == 7) & (((xx - 40) * 0.8) ** 2 + ((yy - 30) * 0.6) ** 2 <= radius ** 2)
    else:  # coronal slice y = 30; the disk in (z, x)
        centre, right, down, normal = at(7, 30, 40), (1, 0, 0), (0, 0, -1), (0, 1, 0)
        truth = (yy == 30) & (((xx - 40) * 0.8) ** 2 + ((zz - 7) * 2.0) ** 2 <= radius ** 2)
    pts = _circle(centre, radius, right, down)
    stats = m.roi_stats(vol, "ellipse", pts, normal)
    expected = arr[truth].astype(float)
    assert expected.size > 20
    assert stats["mean"] == pytest.approx(expected.mean())
    assert stats["sd"] == pytest.approx(expected.std())
    assert (stats["min"], stats["max"]) == (expected.min(), expected.max())
    assert stats["area_mm2"] == pytest.approx(math.pi * radius ** 2)
    # a constant disk in a different background: mean = the disk's value, SD 0
    flat = np.full(GEOM.shape_zyx, -100, np.int16)
    flat[truth] = 60
    s2 = m.roi_stats(Volume(flat, GEOM), "ellipse", pts, normal)
    assert (s2["mean"], s2["sd"], s2["min"], s2["max"]) == (60, 0, 60, 60)


def test_elongated_ellipse_and_rectangle_stats():
    vol = _volume(seed=3)
    zz, yy, xx = np.meshgrid(*(np.arange(n) for n in GEOM.shape_zyx), indexing="ij")
    centre = at(7, 30, 40)
    pts = m.ellipse_from_corners(centre - (12, 6, 0), centre + (12, 6, 0), (1, 0, 0), (0, 1, 0))
    assert m.length_mm(pts[:2]) == pytest.approx(24) and m.length_mm(pts[2:]) == pytest.approx(12)  # major first
    # voxel centres on the outline count as inside
    truth = (zz == 7) & (((xx - 40) * 0.8 / 12) ** 2 + ((yy - 30) * 0.6 / 6) ** 2 <= 1 + 1e-9)
    stats = m.roi_stats(vol, "ellipse", pts, (0, 0, 1))
    assert stats["mean"] == pytest.approx(vol.array[truth].mean())
    assert stats["area_mm2"] == pytest.approx(math.pi * 12 * 6)
    # rectangle between voxel centres (20, 30) and (40, 50) of slice 7: 21 × 21 voxels, 16 mm × 12 mm
    rect = m.rectangle_from_corners(at(7, 20, 30), at(7, 40, 50), (1, 0, 0), (0, 1, 0))
    r = m.roi_stats(vol, "rectangle", rect, (0, 0, 1))
    block = vol.array[7, 20:41, 30:51].astype(float)
    assert r["mean"] == pytest.approx(block.mean()) and r["sd"] == pytest.approx(block.std())
    assert r["area_mm2"] == pytest.approx(16 * 12)


def test_roi_off_the_volume_has_area_but_no_pixels():
    pts = _circle(at(7, 30, 40) + (0, 0, 500), 5, (1, 0, 0), (0, 1, 0))
    stats = m.roi_stats(_volume(), "ellipse", pts, (0, 0, 1))
    assert stats["mean"] is None and stats["area_mm2"] == pytest.approx(math.pi * 25)


def test_handles_reshape_rectangles_and_ellipses():
    rect = m.rectangle_from_corners(at(7, 20, 30), at(7, 40, 50), (1, 0, 0), (0, 1, 0))
    moved = m.with_handle_moved("rectangle", rect, 2, at(7, 50, 60))  # drag the far corner
    assert np.allclose(moved[0], rect[0])
    assert np.allclose(moved[2], at(7, 50, 60))
    assert m.roi_area_mm2("rectangle", moved) == pytest.approx((30 * 0.8) * (30 * 0.6))
    for i in range(4):  # every corner keeps a right-angled box with the opposite corner fixed
        out = m.with_handle_moved("rectangle", rect, i, rect[i] + (3, 2, 0))
        assert np.allclose(out[(i + 2) % 4], rect[(i + 2) % 4])
        assert np.allclose(out[i], rect[i] + (3, 2, 0))
        assert abs((out[1] - out[0]) @ (out[3] - out[0])) < 1e-9
    ell = _circle(at(7, 30, 40), 10, (1, 0, 0), (0, 1, 0))
    wider = m.with_handle_moved("ellipse", ell, 1, ell[1] + (6, 0, 0))
    assert m.length_mm(wider[:2]) == pytest.approx(26) and m.length_mm(wider[2:]) == pytest.approx(20)
    assert np.allclose(wider[0], ell[0])  # the opposite end stays
    line = m.with_handle_moved("length", [at(7, 0, 0), at(7, 0, 10)], 1, at(7, 0, 20))
    assert m.length_mm(line) == pytest.approx(16)


def test_cross_section_with_another_plane():
    # a length across the coronal plane y = row 30 on axial slice 7: one point, where it crosses
    line = [at(7, 20, 40), at(7, 40, 40)]
    pieces = m.cross_section("length", line, CORONAL.normal, CORONAL.point, 0.3)
    assert len(pieces) == 1 and pieces[0].shape == (1, 3) and np.allclose(pieces[0][0], at(7, 30, 40))
    # an axial circle through the coronal plane at its centre: the chord is a diameter along x
    circle = _circle(at(7, 30, 40), 9, (1, 0, 0), (0, 1, 0))
    (chord,) = m.cross_section("ellipse", circle, CORONAL.normal, CORONAL.point, 0.3)
    assert chord.shape == (2, 3) and m.length_mm(chord) == pytest.approx(18, rel=1e-3)
    # the same circle on its own plane: the whole outline; away from it: nothing
    assert len(m.cross_section("ellipse", circle, AXIAL.normal, AXIAL.point, 1.0)[0]) == m.ELLIPSE_SEGMENTS + 1
    assert m.cross_section("ellipse", circle, (0, 0, 1), at(9, 0, 0), 1.0) == []
    # a line lying in the coronal plane shows whole there
    flat = [at(7, 30, 20), at(7, 30, 60)]
    (whole,) = m.cross_section("length", flat, CORONAL.normal, CORONAL.point, 0.3)
    assert np.allclose(whole, flat)


# --- the annotation and its JSON contract ---------------------------------------------------------
def _ellipse_annotation(vol):
    pts = _circle(at(7, 30, 40), 9, (1, 0, 0), (0, 1, 0))
    return measured(new_annotation("ellipse", pts, AXIAL, vol.meta["series_uid"]), vol)


def test_json_contract_round_trip():
    vol = _volume()
    roi = _ellipse_annotation(vol)
    d = roi.as_dict()
    assert list(d) == ["id", "kind", "points_lps", "series_uid", "label", "value", "unit", "stats", "plane",
                       "created_by", "created_at"]
    assert d["kind"] == "ellipse" and d["unit"] == "" and d["value"] is None
    assert set(d["stats"]) == set(STATS_KEYS) and d["stats"]["area_mm2"] == pytest.approx(math.pi * 81)
    assert d["plane"] == {"normal": [0.0, 0.0, 1.0], "point": list(AXIAL.point)}
    assert d["created_by"] and d["created_at"].endswith("+00:00")
    assert Annotation.from_dict(json.loads(json.dumps(d))) == roi
    length = measured(new_annotation("length", [at(3, 10, 5), at(3, 30, 25)], AXIAL, "s"))
    ld = length.as_dict()
    assert (ld["value"], ld["unit"]) == (pytest.approx(20.0), "mm") and "stats" not in ld
    angle = measured(new_annotation("angle", [at(7, 30, 50), at(7, 30, 40), at(11, 30, 50)], CORONAL, "s"))
    assert (angle.as_dict()["value"], angle.unit) == (pytest.approx(45.0), "deg")
    arrow = measured(new_annotation("arrow", [at(7, 30, 40), at(7, 20, 30)], AXIAL, "s", label="cyst"))
    assert arrow.as_dict()["value"] is None and display_text(arrow) == "cyst"
    # keys of a newer version survive a round trip
    d2 = dict(ld, finding_code="RID123")
    assert Annotation.from_dict(d2).as_dict()["finding_code"] == "RID123"


@pytest.mark.parametrize("broken", [
    {"kind": "circle"}, {"points_lps": [[0, 0, 0]]}, {"points_lps": [[0, 0, "x"], [1, 1, 1]]},
    {"plane": {"normal": [0, 0, 0], "point": [0, 0, 0]}}, {"unit": "cm"}, {"value": "long"}, {"id": ""},
])
def test_from_dict_refuses_entries_off_the_contract(broken):
    good = measured(new_annotation("length", [at(3, 10, 5), at(3, 30, 25)], AXIAL, "s")).as_dict()
    with pytest.raises(AnnotationFormatError):
        Annotation.from_dict({**good, **broken})
    with pytest.raises(AnnotationFormatError):
        Annotation.from_dict({k: v for k, v in good.items() if k != "plane"})


def test_display_text():
    vol = _volume()
    length = measured(new_annotation("length", [at(3, 10, 5), at(3, 30, 25)], AXIAL, "s"))
    assert display_text(length) == "20.0 mm"
    assert display_text(measured(new_annotation("angle", [at(7, 30, 50), at(7, 30, 40), at(11, 30, 50)],
                                                CORONAL, "s"))) == "45.0°"
    text = display_text(_ellipse_annotation(vol))
    assert text.startswith("mean ") and " HU, SD " in text and text.endswith("2.54 cm²")


# --- the collection: add, move, edit, delete, undo, redo ---------------------------------------------
class Events:
    def __init__(self, annotations: AnnotationSet):
        self.log = []
        for name in ("annotation_added", "annotation_changed", "annotation_removed", "annotations_reset"):
            getattr(annotations, name).connect(lambda *a, n=name: self.log.append((n, *a)))


def test_annotation_set_edits_with_undo_and_redo():
    vol = _volume()
    s = AnnotationSet()
    s.volume = vol
    ev = Events(s)
    a = s.add(new_annotation("length", [at(3, 10, 5), at(3, 30, 25)], AXIAL, "1.2.3.4"))
    assert a.value == pytest.approx(20.0) and ev.log == [("annotation_added", a)]
    b = s.add(new_annotation("ellipse", _circle(at(7, 30, 40), 9, (1, 0, 0), (0, 1, 0)), AXIAL, "1.2.3.4"))
    moved = s.move(b.id, (8.0, 0, 0))
    assert moved.stats["mean"] != b.stats["mean"]  # statistics follow the ROI
    assert np.allclose(moved.points - b.points, (8, 0, 0))
    longer = s.move_handle(a.id, 1, at(3, 30, 45))
    assert longer.value == pytest.approx(math.hypot(12, 32))
    s.edit(a.id, label="aorta")
    assert s.get(a.id).label == "aorta"
    s.delete(a.id)
    assert a.id not in s and len(s) == 1
    assert s.undo() and list(s)[0].id == a.id  # back in its place, label kept
    assert s.get(a.id).label == "aorta"
    assert s.undo() and s.get(a.id).label == ""
    assert s.undo() and s.get(a.id).value == pytest.approx(20.0)
    assert s.undo() and s.get(b.id) == b
    assert s.redo() and s.get(b.id) == moved
    s.undo()
    s.undo()
    s.undo()
    assert len(s) == 0 and not s.undo_stack.can_undo and not s.undo()
    while s.redo():
        pass
    assert len(s) == 1 and b.id in s
    names = [e[0] for e in ev.log]
    assert names.count("annotation_removed") == 4 and names.count("annotation_added") == 5
    s.set_review("nodule-1", "accepted", "dr_x", "2024-01-01T00:00:00+00:00")
    assert s.document()["review"] == {"nodule-1": {"state": "accepted", "user": "dr_x",
                                                   "time": "2024-01-01T00:00:00+00:00"}}


def test_a_new_action_drops_the_redo_history():
    s = AnnotationSet()
    a = s.add(new_annotation("length", [at(3, 10, 5), at(3, 30, 25)], AXIAL, "s"))
    s.move(a.id, (1, 0, 0))
    s.undo()
    s.move(a.id, (0, 2, 0))
    assert not s.redo()
    assert np.allclose(s.get(a.id).points - a.points, (0, 2, 0))


def test_session_keeps_annotations_within_a_study_and_starts_empty_for_another():
    session = Session()
    session.load_volume(_volume(series="A", study="S1"))
    session.annotations.add(new_annotation("length", [at(3, 10, 5), at(3, 30, 25)], AXIAL, "A"))
    session.load_volume(_volume(series="B", study="S1"))  # another series of the same study
    assert len(session.annotations) == 1 and session.annotations.study_uid == "S1"
    session.load_volume(_volume(series="C", study="S2"))
    assert len(session.annotations) == 0 and session.annotations.study_uid == "S2"
    assert study_key({"source_file": "/x/y.nii.gz"}).startswith("file-")
