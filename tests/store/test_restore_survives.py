"""Restores survive anything on disk (viewer/store/set_aside.py and the stores): a good study store — three
measurements, two label layers — with ONE file damaged in one way restores everything else; the damaged file is set
aside (``<name>.corrupt-<time>`` next to it, never deleted) and named, with a reason, in the restore's problems.
Real files in tmp_path, no mocks. Qt-free."""
from __future__ import annotations

import gzip
import json
import math
import tracemalloc
import zlib

import numpy as np
import pytest

from ai.api import Detection, InferenceResult, Provenance
from radview_base.geometry import Geometry
from viewer.core.ai_bridge import layers_from_result
from viewer.core.annotations import AnnotationSet, Plane, new_annotation
from viewer.core.layers import LabelLayer
from viewer.io.volume import LabelMap
from viewer.store.annotation_store import AnnotationStore, Autosave, serialise
from viewer.store.layer_store import (
    LayerFormatError,
    LayerStore,
    label_manifest,
    nrrd_header,
    read_nrrd,
    series_key_of,
)
from viewer.store.set_aside import MAX_JSON_DEPTH, Problem, json_depth, read_json

_A = 0.2
GEOM = Geometry((12, 30, 40), (2.5, 0.7, 0.71), (-120.5, 10.25, 3.0),
                ((math.cos(_A), -math.sin(_A), 0.0), (math.sin(_A), math.cos(_A), 0.0), (0.0, 0.0, 1.0)))
STUDY, SERIES = "1.2.826.0.1.3680043.8.498.91", "1.2.826.0.1.3680043.8.498.91.1"
AXIAL = Plane((0, 0, 1), (0, 0, 8.0))
DEEP = b"[" * 100_000 + b"]" * 100_000


def _ai_labels() -> LabelLayer:
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    labels[2:8, 5:15, 10:30] = 1
    labels[4:6, 8:12, 12:16] = 2
    prov = Provenance("test-nodules", "Test nodules", "1.0", "classical image analysis, not a learned network", "cpu",
                      "float32", 0.25, "2026-01-01T00:00:00Z", {"threshold": 0.5})
    det = Detection((-4.0, 2.0, -12.0), 8.0, 0.3, 20.0, "solid", 0.9)
    layer, _markers = layers_from_result(InferenceResult(GEOM, prov, labels, {1: "lung_left", 2: "nodule"}, (det,)),
                                         GEOM)
    return layer


def _edited_labels() -> LabelLayer:
    array = np.zeros(GEOM.shape_zyx, np.uint16)
    array[6:9, 10:20, 5:25] = 7
    return LabelLayer(LabelMap(array, GEOM, {7: "lesion"}), name="edited", meta={"edited": True, "edited_by": "dr_x"})


class Study:
    """A good store on disk: the study's annotation file (three measurements) and two label layers."""

    def __init__(self, root):
        self.root = root
        self.annotations = AnnotationStore(root)
        self.layers = LayerStore(root)
        self.measurements = [new_annotation("length", [(x, 1, 8), (x + 10, 1, 8)], AXIAL, SERIES) for x in (0, 5, 9)]
        self.annotations.write(STUDY, serialise(STUDY, self.measurements, {}))
        self.ai, self.edited = _ai_labels(), _edited_labels()
        for layer_id, layer, created in (("ai", self.ai, 1.0), ("edited", self.edited, 2.0)):
            self.layers.write_labels(STUDY, label_manifest(layer, layer_id, STUDY, SERIES, "r1", created),
                                     layer.label_map.array)

    @property
    def annotation_file(self):
        return self.annotations.path_for(STUDY)

    def manifest(self, layer_id="ai"):
        return self.layers.manifest_path(STUDY, layer_id)

    def data(self, layer_id="ai"):
        return self.layers.folder(STUDY) / json.loads(self.manifest(layer_id).read_text())["data"]["file"]

    def edit_manifest(self, change, layer_id="ai") -> None:
        manifest = json.loads(self.manifest(layer_id).read_text())
        change(manifest)
        self.manifest(layer_id).write_text(json.dumps(manifest))

    def restore(self, geometry=GEOM):
        """What the window does: the measurements (Autosave.open_study), then the series' layers."""
        annotations = AnnotationSet()
        saver = Autosave(annotations, self.annotations)
        try:
            saver.open_study(STUDY)
            problems = list(saver.problems)
        finally:
            saver.close()
        loaded = self.layers.load(STUDY, SERIES, geometry, SERIES)
        return annotations, loaded, problems + loaded.problems


@pytest.fixture
def study(tmp_path):
    return Study(tmp_path / "annotations")


def _set_aside(path):
    return sorted(path.parent.glob(f"{path.name}.corrupt-*"))


def _assert_set_aside(path, problems, before: bytes | None = None, rewritten: bool = False):
    """``path`` was renamed aside (``rewritten``: and a new file, of what was recovered, written in its place)."""
    kept = _set_aside(path)
    assert path.exists() == rewritten and len(kept) == 1, f"{path.name} not set aside: {sorted(path.parent.iterdir())}"
    if before is not None:
        assert kept[0].read_bytes() == before  # moved, never rewritten or deleted
    (problem,) = [p for p in problems if p.file == path]
    file, reason = problem
    assert isinstance(problem, Problem) and file == path and reason and f"kept as {kept[0]}" in reason
    return reason


def _assert_layers(loaded, study, names=("ai", "edited")):
    layers = {s.layer_id: s.layer for s in loaded.layers}
    assert sorted(layers) == sorted(names)
    for layer_id in names:
        original = study.ai if layer_id == "ai" else study.edited
        assert np.array_equal(layers[layer_id].label_map.array, original.label_map.array)
        assert layers[layer_id].geometry == GEOM and layers[layer_id].name == original.name


def _assert_measurements(annotations, study, n=3):
    assert len(annotations) == n and {a.id for a in annotations} <= {a.id for a in study.measurements}


# --- the study's annotation file ----------------------------------------------------------------------------------
def _annotation_doc(study):
    return json.loads(study.annotation_file.read_text())


ANNOTATION_DAMAGE = {
    # name: (how the file is damaged, measurements still restored, words of the reason)
    "deep json": (lambda s: DEEP, 0, "nested 100000 levels deep"),
    "bad utf-8": (lambda s: s.annotation_file.read_bytes().replace(b'"length"', b'"l\xff\xfeng"', 1), 0, "UTF-8"),
    "truncated json": (lambda s: s.annotation_file.read_bytes()[:len(s.annotation_file.read_bytes()) // 2], 0,
                       "not valid JSON"),
    "a point that is a string": (lambda s: _with(s, lambda d: d["measurements"][1].update(
        points_lps=["1.5, 2, 3", [4.0, 5.0, 6.0]])), 2, "measurement 2"),
    "points of numeric strings": (lambda s: _with(s, lambda d: d["measurements"][0].update(
        points_lps=["123", "456"])), 2, "three numbers"),
    "a list where a dict is expected": (lambda s: _with(s, lambda d: d["measurements"][2].update(plane=[0, 0, 1])), 2,
                                        "measurement 3"),
    "measurements a dict": (lambda s: _with(s, lambda d: d.update(measurements={"a": 1})), 0, "not a list"),
    "the file a list": (lambda s: b"[1, 2, 3]", 0, "not an object"),
    "review a list": (lambda s: _with(s, lambda d: d.update(review=[1])), 3, "review"),
}


def _with(study, change) -> bytes:
    doc = _annotation_doc(study)
    change(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("damage", list(ANNOTATION_DAMAGE))
def test_a_damaged_annotation_file_is_set_aside_and_the_rest_restores(study, damage):
    make, restored, words = ANNOTATION_DAMAGE[damage]
    bad = make(study)
    study.annotation_file.write_bytes(bad)
    annotations, loaded, problems = study.restore()
    reason = _assert_set_aside(study.annotation_file, problems, bad, rewritten=restored > 0)
    assert words in reason and len(problems) == 1
    _assert_measurements(annotations, study, restored)
    if restored:  # what was recovered is the study's file again
        assert [m["id"] for m in _annotation_doc(study)["measurements"]] == [a.id for a in annotations]
    _assert_layers(loaded, study)


def test_a_damaged_annotation_file_is_set_aside_once_and_recovered_entries_are_saved_again(study):
    study.annotation_file.write_bytes(ANNOTATION_DAMAGE["a point that is a string"][0](study))
    annotations, _loaded, problems = study.restore()
    assert len(problems) == 1 and len(annotations) == 2
    again, _loaded, problems = study.restore()  # the two recovered ones were written back at once
    assert problems == [] and {a.id for a in again} == {a.id for a in annotations}
    assert len(_set_aside(study.annotation_file)) == 1


# --- a layer's manifest -----------------------------------------------------------------------------------------------
def _set(path: list, value):
    def change(manifest):
        target = manifest
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


MANIFEST_TYPES = {
    "spacing as text": (["geometry", "spacing_zyx"], ["2.5", "0.7", "0.71"]),
    "shape not whole": (["geometry", "shape_zyx"], [12.5, 30, 40]),
    "origin NaN": (["geometry", "origin_lps"], [float("nan"), 0.0, 0.0]),
    "geometry a list": (["geometry"], [12, 30, 40]),
    "meta a list": (["meta"], [1, 2]),
    "provenance field of the wrong type": (["meta", "provenance", "run_time_s"], "fast"),
    "provenance a list": (["meta", "provenance"], ["x"]),
    "unknown stored type": (["meta", "provenance", "$type"], "Exploit"),
    "detections a string": (["meta", "detections"], "none"),
    "colour a name": (["colors", "1"], "red"),
    "hidden labels as text": (["hidden_labels"], "12"),
    "data a string": (["data"], "ai.nrrd"),
    "checksum as text": (["data", "crc32"], "123"),
    "layer id a number": (["layer_id"], 5),
    "unknown kind": (["kind"], "mesh"),
    "labels a list": (["labels"], ["lung_left", "nodule"]),
    "opacity as text": (["opacity"], "0.4"),
}


@pytest.mark.parametrize("damage", ["deep json", "bad utf-8", "truncated json", "not an object", "empty",
                                    "names another layer's data", *MANIFEST_TYPES])
def test_a_damaged_layer_manifest_is_set_aside_and_the_rest_restores(study, damage):
    path = study.manifest()
    data = study.data()
    if damage == "deep json":
        path.write_bytes(DEEP)
    elif damage == "bad utf-8":
        path.write_bytes(path.read_bytes().replace(b'"format"', b'"f\xc3\x28rmat"'))
    elif damage == "truncated json":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "not an object":
        path.write_text('"radview-layer"')
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "names another layer's data":
        study.edit_manifest(_set(["data", "file"], study.data("edited").name))
    else:
        study.edit_manifest(_set(*MANIFEST_TYPES[damage]))
    bad = path.read_bytes()
    annotations, loaded, problems = study.restore()
    _assert_set_aside(path, problems, bad)
    assert len(problems) == 1 and len(loaded.messages) == 1 and "could not be read" in loaded.messages[0]
    assert not data.exists() and len(_set_aside(data)) == 1  # the layer's data goes aside with its manifest
    _assert_measurements(annotations, study)
    _assert_layers(loaded, study, ["edited"])
    _annotations, again, problems = study.restore()
    assert problems == [] and [s.layer_id for s in again.layers] == ["edited"]  # reported once


# --- a layer's data file (the manifest's sidecar) -------------------------------------------------------------------
def _split(path):
    head, _, body = path.read_bytes().partition(b"\n\n")
    return head, body


def _header_line(path, key: bytes, value: bytes) -> bytes:
    head, body = _split(path)
    line = next(line for line in head.split(b"\n") if line.startswith(key + b":"))
    return head.replace(line, key + b": " + value) + b"\n\n" + body


DATA_DAMAGE = {
    "absurd declared size": (lambda p: _header_line(p, b"sizes", b"100000 100000 100000"), "(100000, 100000, 100000)"),
    "truncated data": (lambda p: p.read_bytes()[:len(p.read_bytes()) - 40], "truncated"),
    "gzip garbage": (lambda p: _split(p)[0] + b"\n\n" + np.random.default_rng(1).bytes(600),
                     "compressed data is damaged"),
    "garbage instead of NRRD": (lambda p: np.random.default_rng(2).bytes(900), "header"),
    "unknown encoding": (lambda p: _header_line(p, b"encoding", b"bzip2"), "bzip2"),
    "unknown type": (lambda p: _header_line(p, b"type", b"float"), "float"),
    "altered voxels": (lambda p: _split(p)[0] + b"\n\n" + gzip.compress(b"\x03" * (12 * 30 * 40)), "checksum"),
    "NaN origin": (lambda p: _header_line(p, b"space origin", b"(nan,0,0)"), "finite"),
    "empty": (lambda p: b"", "ends inside its header"),
}


@pytest.mark.parametrize("damage", list(DATA_DAMAGE))
def test_a_damaged_layer_data_file_is_set_aside_and_the_rest_restores(study, damage):
    make, words = DATA_DAMAGE[damage]
    data, manifest = study.data(), study.manifest()
    bad = make(data)
    data.write_bytes(bad)
    annotations, loaded, problems = study.restore()
    reason = _assert_set_aside(data, problems, bad)
    assert words in reason and len(problems) == 1
    assert not manifest.exists() and len(_set_aside(manifest)) == 1  # the whole layer is kept aside
    _assert_measurements(annotations, study)
    _assert_layers(loaded, study, ["edited"])


def test_a_missing_data_file_sets_its_manifest_aside(study):
    data, manifest = study.data("edited"), study.manifest("edited")
    data.unlink()
    annotations, loaded, problems = study.restore()
    (problem,) = problems
    assert problem.file == data and "is missing" in problem.reason
    assert not manifest.exists() and len(_set_aside(manifest)) == 1
    _assert_measurements(annotations, study)
    _assert_layers(loaded, study, ["ai"])


def test_a_layer_declaring_an_absurd_size_in_manifest_and_data_is_refused_before_allocating(study):
    """Manifest and data agree on 100000³ voxels: refused by what the data can hold, not by a failed allocation."""
    data = study.data()
    study.edit_manifest(_set(["geometry", "shape_zyx"], [100000, 100000, 100000]))
    data.write_bytes(_header_line(data, b"sizes", b"100000 100000 100000"))
    tracemalloc.start()
    try:
        annotations, loaded, problems = study.restore()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 << 20  # nothing near the declared size was asked for
    reason = _assert_set_aside(data, problems)
    assert "GiB" in reason and len(problems) == 1
    _assert_measurements(annotations, study)
    _assert_layers(loaded, study, ["edited"])


@pytest.mark.parametrize("encoding", ["gzip", "raw"])
def test_the_reader_refuses_a_declared_size_the_data_cannot_hold_before_allocating(tmp_path, encoding):
    """1000³ uint8 (1 GB) declared over a few bytes: refused at once, with no allocation (no shape to compare)."""
    geometry = Geometry((1000, 1000, 1000), (1.0, 1.0, 1.0))
    body = zlib.compress(b"\0" * 1000, 1) if encoding == "gzip" else b"\0" * 1000
    path = tmp_path / "big.nrrd"
    path.write_bytes(nrrd_header(geometry.shape_zyx, np.uint8, geometry).replace(b"encoding: gzip",
                                                                                 f"encoding: {encoding}".encode())
                     + body)
    tracemalloc.start()
    try:
        with pytest.raises(LayerFormatError, match="gzip data can hold" if encoding == "gzip" else "truncated"):
            read_nrrd(path)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20


# --- a layer on another grid than its series ----------------------------------------------------------------------
def _shifted() -> Geometry:
    return Geometry(GEOM.shape_zyx, GEOM.spacing_zyx, (GEOM.origin_lps[0] + 5.0, *GEOM.origin_lps[1:]),
                    GEOM.direction)


def test_a_layer_whose_grid_is_not_its_series_is_set_aside(study):
    """The layer's manifest and data agree with each other, but not with the volume it is restored onto."""
    shifted = _shifted()
    layer = LabelLayer(LabelMap(study.edited.label_map.array, shifted, {7: "lesion"}), name="edited",
                       meta={"edited": True})
    study.layers.write_labels(STUDY, label_manifest(layer, "edited", STUDY, SERIES, None, 2.0), layer.label_map.array)
    manifest, data = study.manifest("edited"), study.data("edited")
    annotations, loaded, problems = study.restore()
    reason = _assert_set_aside(manifest, problems)
    assert "does not lie on this series' grid" in reason and "5.000 mm" in reason and len(problems) == 1
    assert not data.exists() and len(_set_aside(data)) == 1
    _assert_measurements(annotations, study)
    _assert_layers(loaded, study, ["ai"])


def test_a_layer_of_another_part_of_a_split_series_is_left_alone(study):
    """Parts of a split series share the UID: a layer saved on part #2 is not shown on part #1, nor set aside."""
    layer = LabelLayer(LabelMap(study.edited.label_map.array, _shifted(), {7: "lesion"}), name="edited",
                       meta={"edited": True})
    study.layers.write_labels(STUDY, label_manifest(layer, "edited", STUDY, SERIES, None, 2.0, f"{SERIES}#2"),
                              layer.label_map.array)
    loaded = study.layers.load(STUDY, SERIES, GEOM, series_key_of({"series_uid": SERIES,
                                                                     "series_key": f"{SERIES}#1"}))
    assert [s.layer_id for s in loaded.layers] == ["ai"] and loaded.problems == [] and loaded.messages == []
    assert study.manifest("edited").exists() and study.data("edited").exists()
    back = study.layers.load(STUDY, SERIES, _shifted(), f"{SERIES}#2")  # part #2 opened: it is there
    assert sorted(s.layer_id for s in back.layers) == ["edited"] and len(back.problems) == 0


# --- the readers themselves ---------------------------------------------------------------------------------------
def test_json_depth_counts_brackets_outside_strings():
    assert json_depth(b'{"a": [1, {"b": "[[[[{{{{"}], "c": "\\"]]"}') == 3
    assert json_depth(b"") == 0 and json_depth(DEEP) == 100_000


@pytest.mark.parametrize("raw, words", [(DEEP, "nested"), (b'{"a": "\xff"}', "UTF-8"),
                                        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), "nested")])
def test_read_json_refuses_before_parsing(tmp_path, raw, words):
    path = tmp_path / "x.json"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=words):
        read_json(path)
    path.write_bytes(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert read_json(path) is not None


def test_a_file_that_cannot_be_moved_aside_is_reported_and_left_in_place(study):
    folder = study.annotation_file.parent
    study.annotation_file.write_bytes(DEEP)
    folder.chmod(0o500)  # no renames in the folder
    try:
        if _writable(folder):
            pytest.skip("running as a user the folder's permissions do not stop")
        stored = study.annotations.load(STUDY)
    finally:
        folder.chmod(0o700)
    (problem,) = stored.problems
    assert problem.file == study.annotation_file and "could not be moved aside" in problem.reason
    assert study.annotation_file.read_bytes() == DEEP and stored.annotations == [] and stored.kept_as is None


def _writable(folder) -> bool:
    probe = folder / "probe"
    try:
        probe.write_text("")
    except OSError:
        return False
    probe.unlink()
    return True
