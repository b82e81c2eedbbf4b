"""Label and marker layers on disk (viewer/store/layer_store.py): written after every stroke, atomically, latest wins;
restored with geometry, provenance, edit marks and revision exactly; damaged files kept aside. Qt-free."""
from __future__ import annotations

import json
import math
import os
import threading
import time
import weakref
import zlib

import numpy as np
import pytest

from ai.api import Detection, InferenceResult, Provenance, StructureFeatures
from radview_base.atomic_file import TEMP_PREFIX
from radview_base.geometry import Geometry
from viewer.core import review
from viewer.core.ai_bridge import layers_from_result
from viewer.core.label_edit import BrushStroke, record_edit
from viewer.core.layers import LabelLayer
from viewer.core.session import Session
from viewer.core.slicing import SlicePlane
from viewer.io.volume import LabelMap, Volume
from viewer.store.annotation_store import AnnotationStore, Autosave
from viewer.store.layer_store import (
    CHUNK,
    DATA_SUFFIX,
    SETTLE_ADDED_S,
    LayerAutosave,
    LayerFormatError,
    LayerStore,
    decode_value,
    encode_value,
    label_manifest,
    marker_manifest,
    nrrd_header,
    read_nrrd,
    write_nrrd_atomic,
)

# oblique, anisotropic, with digits a float32 would lose
_A = 0.3
GEOM = Geometry((12, 30, 40), (2.5, 0.7031249999, 0.71), (-123.456789012345, 1 / 3, 2 / 7),
                ((math.cos(_A), -math.sin(_A), 0.0), (math.sin(_A), math.cos(_A), 0.0), (0.0, 0.0, 1.0)))
STUDY, SERIES, OTHER_SERIES = "1.2.826.0.1.3680043.8.498.77", "1.2.826.0.1.3680043.8.498.77.1", "1.2.826.0.1.9.2"


def _provenance():
    return Provenance("test-nodules", "Test nodules", "1.0", "classical image analysis, not a learned network", "cpu",
                      "float32", 0.25, "2026-01-01T00:00:00Z", {"threshold": 0.5, "sizes": (3, 5)}, "radview test")


def _result():
    labels = np.zeros(GEOM.shape_zyx, np.uint8)
    labels[2:8, 5:15, 10:30] = 1
    labels[4:6, 8:12, 12:16] = 2
    dets = (Detection((-4.04, 1.96, -12.0), 8.0, 0.3, 20.0, "solid", 0.9, "nodule", "lung_left", {"elong": 1.5}),
            Detection((6.0, -0.04, -4.0), 6.0, 0.1, -400.0, "subsolid", 0.7))
    structures = (StructureFeatures(1, "lung_left", 1200, 5.2, (1.0, 2.0, 3.0), 40.0, 55.0, 0.6, -800.0, 40.0),
                  StructureFeatures(2, "nodule", 32, 0.1, (1.5, 2.5, 3.5), 8.0, 9.0, 0.9, 20.0, 4.0, float("nan")))
    return InferenceResult(GEOM, _provenance(), labels, {1: "lung_left", 2: "nodule"}, dets,
                           ("ran on CPU",), structures)


def _volume(series=SERIES, study=STUDY):
    return Volume(np.zeros(GEOM.shape_zyx, np.int16), GEOM,
                  meta={"modality": "CT", "series_uid": series, "study_uid": study})


@pytest.fixture
def store(tmp_path):
    return LayerStore(tmp_path / "annotations")


@pytest.fixture
def session():
    s = Session()
    s.load_volume(_volume())
    return s


@pytest.fixture
def saver(session, store):
    autosave = LayerAutosave(session, store)
    yield autosave
    autosave.close()


def _stroke(session, layer, k=5, row=10, col=12, label=2, radius=2.0, erase=False):
    plane = SlicePlane.for_view("axial", session.volume.geometry)
    stroke = BrushStroke(layer, plane, k, label, radius, erase=erase)
    stroke.add(row, col)
    stroke.add(row + 3, col + 4)
    edit = stroke.finish()
    record_edit(session, edit)  # what the brush does on mouse release: undoable, then labels_edited
    return edit


def _files(store, study=STUDY):
    folder = store.folder(study)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- JSON of meta ------------------------------------------------------------------------------------------------
def test_meta_values_round_trip_through_json_exactly():
    value = {"provenance": _provenance(), "detections": _result().detections, "structures": _result().structures,
             "messages": ("a", "b"), "segments": {3: {"name": "x"}, 4: {"name": "y"}}, "hidden": {1, 2},
             "nested": [(1, 2), {"$odd": 1}], "n": np.int64(3), "f": np.float32(0.5), "ok": True, "none": None}
    back = decode_value(json.loads(json.dumps(encode_value(value))))
    assert back["provenance"] == value["provenance"] and isinstance(back["provenance"], Provenance)
    assert back["detections"] == value["detections"] and isinstance(back["detections"], tuple)
    assert repr(back["structures"]) == repr(value["structures"]) and math.isnan(back["structures"][1].min_hu)
    assert back["messages"] == ("a", "b") and back["segments"] == {3: {"name": "x"}, 4: {"name": "y"}}
    assert back["hidden"] == {1, 2} and back["nested"] == [(1, 2), {"$odd": 1}]
    assert back["n"] == 3 and back["f"] == 0.5 and back["ok"] is True and back["none"] is None


# --- the store ---------------------------------------------------------------------------------------------------
def test_a_label_layer_round_trips_with_exact_geometry_provenance_and_edit_marks(store):
    labels, markers = layers_from_result(_result(), GEOM)
    labels.meta.update({"edited": True, "edited_by": "dr_x", "edited_at": "2026-02-01T10:00:00+01:00",
                        "revision": "abcdef0123456789", "review_state": "reviewed", "reviewed_by": "dr_x"})
    labels.colors[2] = (1, 2, 3)
    labels.hidden_labels = {1}
    labels.opacity, labels.outline = 0.7, True
    labels.surface_opacity[1] = 0.3
    store.write_labels(STUDY, label_manifest(labels, "lab1", STUDY, SERIES, "res1", 1.0), labels.label_map.array)
    store.write_markers(STUDY, marker_manifest(markers, "mark1", STUDY, SERIES, "res1", 2.0))

    loaded = store.load(STUDY, SERIES)
    assert loaded.messages == [] and [s.layer_id for s in loaded.layers] == ["lab1", "mark1"]
    back, back_markers = loaded.layers[0].layer, loaded.layers[1].layer
    assert isinstance(back, LabelLayer) and back.name == labels.name
    assert back.geometry == GEOM  # every float exactly
    assert back.label_map.array.dtype == np.uint8 and np.array_equal(back.label_map.array, labels.label_map.array)
    assert back.label_map.labels == {1: "lung_left", 2: "nodule"}
    assert back.colors == labels.colors and back.hidden_labels == {1} and back.surface_opacity == labels.surface_opacity
    assert (back.opacity, back.outline, back.visible) == (0.7, True, True)
    assert back.voxel_counts == labels.voxel_counts and back.volumes_ml == pytest.approx(labels.volumes_ml)
    for key in ("edited", "edited_by", "edited_at", "revision", "model_id", "ai", "messages"):
        assert back.meta[key] == labels.meta[key]
    assert "review_state" not in back.meta and "reviewed_by" not in back.meta  # derived from the review table
    prov = back.meta["provenance"]
    assert prov == _provenance() and prov.parameters == {"threshold": 0.5, "sizes": (3, 5)}
    assert back_markers.meta["provenance"] is prov and back.label_map.meta["provenance"] is prov  # one result
    assert repr(back.meta["structures"]) == repr(labels.meta["structures"])  # NaN != NaN
    assert back_markers.markers == markers.markers and back_markers.meta["detections"] == markers.meta["detections"]
    assert review.label_revision(back) == "abcdef0123456789"
    # the files: a manifest per layer and one NRRD, readable by other tools with the same grid
    data_files = [n for n in _files(store) if n.endswith(DATA_SUFFIX)]
    assert sorted(_files(store)) == sorted(["lab1.json", "mark1.json", *data_files]) and len(data_files) == 1
    from viewer.io.image_io import read_label_map

    other = read_label_map(str(store.folder(STUDY) / loaded.layers[0].manifest["data"]["file"]))
    assert other.geometry.is_close(GEOM, 1e-9) and np.array_equal(other.array, labels.label_map.array)
    # other series are not loaded; without a series filter everything is
    assert store.load(STUDY, OTHER_SERIES).layers == [] and len(store.load(STUDY).layers) == 2
    assert store.load("9.9.9", SERIES).layers == [] and not store.has_layers("9.9.9")


def test_overwrite_keeps_one_data_file_and_delete_removes_everything(store):
    layer = LabelLayer(LabelMap(np.zeros(GEOM.shape_zyx, np.uint16), GEOM, {1: "a"}), name="mine",
                       meta={"edited": True})
    for value in (1, 2, 300):
        layer.label_map.array[value % 10, 1, 1] = value
        store.write_labels(STUDY, label_manifest(layer, "l1", STUDY, SERIES, None, 1.0), layer.label_map.array)
        assert len([n for n in _files(store) if n.endswith(DATA_SUFFIX)]) == 1
    (back,) = store.load(STUDY).layers
    assert back.layer.label_map.array.dtype == np.uint16 and np.array_equal(back.layer.label_map.array,
                                                                            layer.label_map.array)
    assert back.layer.meta == {"edited": True} and back.result_id is None
    assert store.write_display(STUDY, "l1", {"opacity": 0.9, "name": "renamed"})
    assert store.load(STUDY).layers[0].layer.opacity == 0.9 and store.load(STUDY).layers[0].layer.name == "renamed"
    store.delete(STUDY, "l1")
    assert _files(store) == [] and store.load(STUDY).layers == [] and not store.write_display(STUDY, "l1", {})


@pytest.mark.parametrize("damage", ["garbage json", "not an object", "missing data", "altered data", "truncated data",
                                    "wrong grid"])
def test_a_damaged_layer_is_kept_aside_and_reported_and_the_others_still_load(store, damage):
    good = LabelLayer(LabelMap(np.ones(GEOM.shape_zyx, np.uint8), GEOM, {1: "a"}), name="good", meta={"edited": True})
    bad = LabelLayer(LabelMap(np.full(GEOM.shape_zyx, 2, np.uint8), GEOM, {2: "b"}), name="bad", meta={"edited": True})
    store.write_labels(STUDY, label_manifest(good, "good", STUDY, SERIES, None, 1.0), good.label_map.array)
    store.write_labels(STUDY, label_manifest(bad, "bad", STUDY, SERIES, None, 2.0), bad.label_map.array)
    folder = store.folder(STUDY)
    manifest_path = folder / "bad.json"
    manifest = json.loads(manifest_path.read_text())
    data = folder / manifest["data"]["file"]
    if damage == "garbage json":
        manifest_path.write_text('{"format": "radview-layer", "kind": ')
    elif damage == "not an object":
        manifest_path.write_text("[1, 2]")
    elif damage == "missing data":
        data.unlink()
    elif damage == "altered data":
        from viewer.io.image_io import write_image

        write_image(LabelMap(np.full(GEOM.shape_zyx, 3, np.uint8), GEOM), str(data))
    elif damage == "truncated data":
        data.write_bytes(data.read_bytes()[:200])
    elif damage == "wrong grid":
        manifest["geometry"]["origin_lps"][0] += 5.0
        manifest_path.write_text(json.dumps(manifest))
    loaded = store.load(STUDY, SERIES)
    assert [s.layer.name for s in loaded.layers] == ["good"]
    assert len(loaded.messages) == 1 and "could not be read" in loaded.messages[0]
    assert "kept as" in loaded.messages[0] and loaded.kept_as and all(p.exists() for p in loaded.kept_as)
    assert not manifest_path.exists() and all(".corrupt-" in p.name for p in loaded.kept_as)
    assert store.load(STUDY, SERIES).messages == []  # reported once; the file stays aside


def test_a_data_file_declaring_a_huge_size_is_refused_before_anything_is_allocated(store):
    layer = LabelLayer(LabelMap(np.ones(GEOM.shape_zyx, np.uint8), GEOM, {1: "a"}), name="x", meta={"edited": True})
    store.write_labels(STUDY, label_manifest(layer, "l1", STUDY, SERIES, None, 1.0), layer.label_map.array)
    folder = store.folder(STUDY)
    data = folder / json.loads((folder / "l1.json").read_text())["data"]["file"]
    raw = data.read_bytes()
    head, _, body = raw.partition(b"\n\n")
    sizes = next(line for line in head.split(b"\n") if line.startswith(b"sizes:"))
    data.write_bytes(head.replace(sizes, b"sizes: 50000 50000 50000") + b"\n\n" + body)  # 116 TiB of uint8
    loaded = store.load(STUDY)
    assert loaded.layers == [] and len(loaded.messages) == 1
    assert "(50000, 50000, 50000), the manifest says (12, 30, 40)" in loaded.messages[0]


@pytest.mark.parametrize("n", [1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
@pytest.mark.parametrize("encoding", ["gzip", "raw"])
def test_the_streamed_reader_reads_every_length_across_chunk_boundaries(tmp_path, n, encoding):
    rng = np.random.default_rng(n)
    array = rng.integers(0, 256, n, dtype=np.uint8).reshape(1, 1, n)  # random: the gzip body spans several chunks
    geometry = Geometry((1, 1, n), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    path = tmp_path / "x.nrrd"
    if encoding == "raw":
        path.write_bytes(nrrd_header(array.shape, array.dtype, geometry).replace(b"encoding: gzip", b"encoding: raw")
                         + array.tobytes())
    else:
        assert write_nrrd_atomic(path, array, geometry) == zlib.crc32(array)
    back, back_geometry = read_nrrd(path, (1, 1, n))
    assert back.flags.writeable and np.array_equal(back, array) and back_geometry == geometry
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])  # the end of the gzip trailer, or the last voxel, gone
    with pytest.raises(LayerFormatError, match="truncated"):
        read_nrrd(path)
    if n > 1:  # a header that declares fewer voxels than the file holds
        path.write_bytes(whole.replace(f"sizes: {n} 1 1".encode(), f"sizes: {n - 1} 1 1".encode(), 1))
        with pytest.raises(LayerFormatError, match="more voxels than its header says"):
            read_nrrd(path)


def test_leftovers_of_an_interrupted_write_are_ignored_then_tidied(store):
    layer = LabelLayer(LabelMap(np.ones(GEOM.shape_zyx, np.uint8), GEOM, {1: "a"}), name="x", meta={"edited": True})
    store.write_labels(STUDY, label_manifest(layer, "l1", STUDY, SERIES, None, 1.0), layer.label_map.array)
    folder = store.folder(STUDY)
    temp = folder / f"{TEMP_PREFIX}abc-l1.json"
    temp.write_text('{"half": ')
    orphan = folder / f"l1.0123456789ab{DATA_SUFFIX}"  # data written, the kill came before its manifest
    orphan.write_bytes(b"NRRD0004\n")
    loaded = store.load(STUDY)
    assert loaded.messages == [] and len(loaded.layers) == 1 and temp.exists() and orphan.exists()  # too young
    old = time.time() - 3600
    for p in (temp, orphan):
        os.utime(p, (old, old))
    assert store.load(STUDY).messages == [] and not temp.exists() and not orphan.exists()
    assert len(store.load(STUDY).layers) == 1


# --- the autosave ------------------------------------------------------------------------------------------------
def test_an_ai_result_and_every_stroke_are_saved_and_come_back_accepted(session, saver, store, tmp_path):
    annotations = Autosave(session.annotations, AnnotationStore(store.directory))
    annotations.open_study(STUDY)
    labels, markers = layers_from_result(_result(), GEOM)
    session.add_layer(labels)
    session.add_layer(markers)
    assert saver.flush()
    first = store.load(STUDY, SERIES)
    assert [s.layer.name for s in first.layers] == [labels.name, markers.name]
    assert first.layers[0].result_id == first.layers[1].result_id is not None
    assert review.label_revision(first.layers[0].layer) == "0"

    edit = _stroke(session, labels)
    (result,) = review.ai_results(session)
    review.decide_result(session.annotations, result, review.ACCEPTED, "dr_x", "2026-02-02T10:00:00+01:00")
    review.decide_findings(session.annotations, result, [0], review.REJECTED, "dr_x", "2026-02-02T10:00:01+01:00")
    assert saver.flush() and annotations.flush()
    annotations.close()
    assert edit.voxels > 0 and labels.meta["edited_by"]

    # a new session on the same study: the layers come back, and the review still applies
    s2 = Session()
    s2.load_volume(_volume())
    saver2 = LayerAutosave(s2, store)
    a2 = Autosave(s2.annotations, AnnotationStore(store.directory))
    a2.open_study(STUDY)
    loaded = saver2.load_series(STUDY, SERIES)
    saver2.adopt(loaded.layers, STUDY)
    for s in loaded.layers:
        s2.add_layer(s.layer)
    back = loaded.layers[0].layer
    assert np.array_equal(back.label_map.array, labels.label_map.array)
    for key in ("edited", "edited_by", "edited_at", "revision"):
        assert back.meta[key] == labels.meta[key]
    (result2,) = review.ai_results(s2)
    assert result2.label_layer is back and result2.marker_layer is loaded.layers[1].layer
    assert review.result_entry(s2.annotations.review, result2)["state"] == review.ACCEPTED
    assert review.finding_states(s2.annotations.review, result2) == [review.REJECTED, None]
    assert saver2.generation == 0  # adopting and adding wrote nothing
    saver2.close()
    a2.close()


def test_an_arriving_ai_result_is_written_once_the_gui_has_settled_and_copied_only_when_painted(session, saver, store):
    labels, markers = layers_from_result(_result(), GEOM)
    original = labels.label_map.array
    t0 = time.monotonic()
    session.add_layer(labels)
    session.add_layer(markers)
    assert not original.flags.writeable and saver.schedule_ms[0] < 30  # copy-on-write: frozen, not copied
    time.sleep(0.2)
    assert saver.saved_generation == 0 and store.load(STUDY).layers == []  # still settling
    deadline = time.monotonic() + 10
    while saver.saved_generation < saver.generation and time.monotonic() < deadline:
        time.sleep(0.02)
    assert time.monotonic() - t0 >= SETTLE_ADDED_S - 0.05 and len(store.load(STUDY).layers) == 2  # without a flush
    _stroke(session, labels)  # the brush copies the frozen array on its first stroke
    assert labels.label_map.array is not original and labels.label_map.array.flags.writeable
    assert saver.flush()
    (back, _) = [s.layer for s in store.load(STUDY).layers]
    assert np.array_equal(back.label_map.array, labels.label_map.array)
    assert not np.array_equal(back.label_map.array, original)


def test_a_stroke_while_an_ai_result_settles_is_written_at_once(session, saver, store):
    labels, _ = layers_from_result(_result(), GEOM)
    session.add_layer(labels)
    _stroke(session, labels)
    deadline = time.monotonic() + 0.3
    while saver.saved_generation < saver.generation and time.monotonic() < deadline:
        time.sleep(0.01)
    assert saver.saved_generation == saver.generation  # the stroke's snapshot replaced the settling one
    (back,) = store.load(STUDY).layers
    assert back.layer.meta["revision"] == labels.meta["revision"] != "0"


def test_latest_wins_and_a_snapshot_is_never_half_updated(session, saver, store, monkeypatch):
    layer = LabelLayer(LabelMap(np.zeros(GEOM.shape_zyx, np.uint8), GEOM, {1: "a", 2: "b"}), name="seg.nii.gz")
    session.add_layer(layer)
    assert saver.flush() and saver.generation == 0  # a plain file's layer is not kept until it is edited
    gate, writes = threading.Event(), []
    real = store.write_labels

    def slow(study, manifest, array):
        gate.wait(10)
        writes.append((manifest["revision"], array.copy()))
        real(study, manifest, array)

    monkeypatch.setattr(store, "write_labels", slow)
    snapshots = []
    for k in range(6):
        _stroke(session, layer, k=k)
        snapshots.append((layer.meta["revision"], layer.label_map.array.copy()))
    layer.label_map.array[11] = 1  # a change after the last snapshot (no stroke end): not what gets written
    assert saver.saved_generation < saver.generation
    gate.set()
    assert saver.flush()
    # the first snapshot may have been taken by the writer before the gate opened; everything else waited,
    # and only the newest of what waited was written
    assert 1 <= len(writes) <= 2 and writes[-1][0] == snapshots[-1][0]
    assert np.array_equal(writes[-1][1], snapshots[-1][1])
    (back,) = store.load(STUDY).layers
    assert np.array_equal(back.layer.label_map.array, snapshots[-1][1]) and back.layer.meta["revision"] == \
        snapshots[-1][0]


def test_snapshots_reuse_one_spare_buffer_and_a_series_change_frees_it(session, saver, store):
    layer = LabelLayer(LabelMap(np.zeros(GEOM.shape_zyx, np.uint8), GEOM, {1: "a"}), name="seg")
    session.add_layer(layer)
    _stroke(session, layer, label=1)
    assert saver.flush()
    (spare,) = saver._spare.values()
    for k in (3, 7, 9):
        _stroke(session, layer, label=1, k=k)
        assert saver.flush()
        assert next(iter(saver._spare.values())) is spare  # the same memory each time, never a fresh allocation
        (back,) = store.load(STUDY).layers
        assert np.array_equal(back.layer.label_map.array, layer.label_map.array)
    session.load_volume(_volume(OTHER_SERIES))
    assert saver._spare == {}


def test_series_change_keeps_a_layer_removal_deletes_undo_of_every_edit_deletes(session, saver, store):
    layer = LabelLayer(LabelMap(np.zeros(GEOM.shape_zyx, np.uint8), GEOM, {1: "a"}), name="seg")
    session.add_layer(layer)
    _stroke(session, layer, label=1)
    assert saver.flush() and len(store.load(STUDY).layers) == 1
    session.load_volume(_volume(OTHER_SERIES))  # another series of the study: the layers leave the session only
    assert saver.flush() and len(store.load(STUDY).layers) == 1 and store.load(STUDY, OTHER_SERIES).layers == []
    session.load_volume(_volume())
    loaded = saver.load_series(STUDY, SERIES)
    saver.adopt(loaded.layers, STUDY)
    (back,) = [s.layer for s in loaded.layers]
    session.add_layer(back)
    session.update_layer(back, opacity=0.85, hidden_labels={1})  # display settings are kept too
    assert saver.flush() and store.load(STUDY).layers[0].layer.opacity == 0.85
    assert store.load(STUDY).layers[0].layer.hidden_labels == {1}
    session.remove_layer(back)  # the user removes it
    assert saver.flush() and store.load(STUDY).layers == [] and _files(store) == []

    fresh = LabelLayer(LabelMap(np.zeros(GEOM.shape_zyx, np.uint8), GEOM, {1: "a"}), name="seg2")
    session.add_layer(fresh)
    _stroke(session, fresh, label=1)
    assert saver.flush() and len(store.load(STUDY).layers) == 1
    session.annotations.undo()  # its only edit undone: the file on disk holds nothing of the user's any more
    assert "edited" not in fresh.meta and saver.flush() and store.load(STUDY).layers == []
    session.annotations.redo()
    assert saver.flush() and store.load(STUDY).layers[0].layer.meta["edited"] is True


def test_a_failed_write_is_reported_and_the_writer_goes_on(session, saver, store, monkeypatch):
    layer = LabelLayer(LabelMap(np.zeros(GEOM.shape_zyx, np.uint8), GEOM, {1: "a"}), name="seg")
    session.add_layer(layer)
    failures = []
    saver.save_failed.connect(failures.append)
    real = store.write_labels
    monkeypatch.setattr(store, "write_labels", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    _stroke(session, layer, label=1)
    assert saver.flush() and failures and "disk full" in failures[0] and "seg" in failures[0]
    monkeypatch.setattr(store, "write_labels", real)
    _stroke(session, layer, label=1, k=7)
    assert saver.flush() and len(failures) == 1 and len(store.load(STUDY).layers) == 1


def test_the_autosave_holds_no_layer_alive(session, saver):
    layer = LabelLayer(LabelMap(np.zeros(GEOM.shape_zyx, np.uint8), GEOM, {1: "a"}), name="seg")
    session.add_layer(layer)
    _stroke(session, layer, label=1)
    assert saver.flush()
    ref = weakref.ref(layer)
    session.load_volume(_volume(OTHER_SERIES))
    session.annotations.undo_stack.clear()
    del layer
    assert ref() is None


def test_timing_of_a_stroke_on_a_160x512x512_label_map(tmp_path):
    """The GUI thread's share (snapshot) and the writer's share (NRRD, fsync, rename) for the demo's grid size."""
    geom = Geometry((160, 512, 512), (2.0, 0.75, 0.75), (-191.625, -191.625, -260.0))
    session = Session()
    session.load_volume(Volume(np.zeros((1, 1, 1), np.int16).repeat(160, 0).repeat(512, 1).repeat(512, 2), geom,
                               meta={"study_uid": STUDY, "series_uid": SERIES}))
    labels = np.zeros(geom.shape_zyx, np.uint8)
    zz, yy, xx = np.ogrid[:160, :512, :512]
    labels[((zz - 80) / 60.0) ** 2 + ((yy - 256) / 200.0) ** 2 + ((xx - 256) / 220.0) ** 2 < 1] = 1
    labels[((zz - 70) / 30.0) ** 2 + ((yy - 200) / 80.0) ** 2 + ((xx - 150) / 60.0) ** 2 < 1] = 2
    layer = LabelLayer(LabelMap(labels, geom, {1: "body", 2: "lung_left"}), name="seg")
    session.add_layer(layer)
    saver = LayerAutosave(session, LayerStore(tmp_path))
    try:
        for k in range(40, 48):
            _stroke(session, layer, k=k, row=200, col=200, label=2, radius=6.0)
            assert saver.flush()
        gui, write = saver.schedule_ms, saver.write_ms
        print(f"\n160x512x512 uint8: GUI snapshot per stroke median {np.median(gui):.1f} ms (max {max(gui):.1f}); "
              f"background write median {np.median(write):.0f} ms (max {max(write):.0f})")
        assert np.median(gui) < 30 and len(write) == 8
        (back,) = LayerStore(tmp_path).load(STUDY).layers
        assert np.array_equal(back.layer.label_map.array, layer.label_map.array)
    finally:
        saver.close()
