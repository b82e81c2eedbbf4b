"""Reviewed AI results remember where their image series was read from (viewer/store/layer_store.py records it in
the layer manifest, viewer/store/layer_json.py checks it, viewer/logic/reviewed_data.py tries it first): real DICOM
phantom studies written to tmp folders and opened as the viewer does (a folder scanned into a study index, the
series loaded from it; an image file read on its own), AI label maps saved by the real autosaves, listed with no
study database and no folder given, exported; a moved folder, an old manifest without the record and a malformed
record handled as the brief says."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from reviewed_store import SHAPE, decide, save_file_result, write_patient

from ai.training.dataset import load_case, open_dataset
from viewer.core import review
from viewer.core.label_edit import BrushStroke, record_edit
from viewer.core.session import Session
from viewer.core.slicing import SlicePlane
from viewer.io.dicom_index import scan
from viewer.io.series_loader import load_series
from viewer.logic.reviewed_data import ACCEPTED, EDITED, list_cases
from viewer.logic.reviewed_export import export_reviewed
from viewer.net.study_db import StudyDatabase
from viewer.store.layer_store import LayerAutosave, LayerStore


def save_opened(store_dir: Path, opened: Path, series_uid: str, state: str | None, edit: bool = False,
                index_folder: Path | None = None) -> None:
    """Open the folder ``opened`` as the viewer does (scanned into a study index, the series ``series_uid`` loaded
    from it; the autosave asks that index where the series was read from, as the window's opener gives it), add an
    AI label map, optionally paint on it, decide on it, and let the autosaves write. ``index_folder``: the open
    index is another folder's (the series is not in it)."""
    index = scan(str(opened))
    volume = load_series(index.find(series_uid))
    shown = scan(str(index_folder)) if index_folder is not None else index
    decide(store_dir, volume, volume.meta["study_uid"], state, edit, index=lambda: shown)


def _manifests(store: Path) -> dict[str, Path]:
    """``{study uid: manifest path}`` of the label layers in the store."""
    out = {}
    for path in store.glob("*/layers/*.json"):
        doc = json.loads(path.read_text())
        if doc["kind"] == "labels":
            out[doc["study_uid"]] = path
    return out


def _rewrite(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def dicom(tmp_path_factory):
    """Two patients' studies written to a tmp folder, each opened from its folder; P1 accepted, P2 painted on
    then accepted."""
    tmp = tmp_path_factory.mktemp("source")
    store, images = tmp / "annotations", tmp / "images"
    made = {}
    for seed, (patient, edit) in enumerate((("P1", False), ("P2", True))):
        made[patient] = write_patient(images, 60 + seed, patient)
        save_opened(store, images / patient, made[patient].series_uid, review.ACCEPTED, edit=edit)
    return tmp, store, made


def test_a_dicom_series_opened_from_a_folder_is_found_at_its_recorded_source_and_exported(dicom, tmp_path):
    tmp, store, made = dicom
    manifests = _manifests(store)
    for m in made.values():  # the manifest names the series' own folder (the opened folder holds more) and its UID
        assert json.loads(manifests[m.study_uid].read_text())["source"] == {
            "path": os.path.abspath(m.folder), "series_uid": m.series_uid}
    before = sorted(p.name for p in store.rglob("*"))
    listing = list_cases(store, [], study_db=tmp / "no-db")
    assert sorted(p.name for p in store.rglob("*")) == before and not listing.problems
    cases = {c.patient_id: c for c in listing.cases}
    assert {p: c.state for p, c in cases.items()} == {"P1": ACCEPTED, "P2": EDITED}
    for patient, case in cases.items():
        assert case.found_in == "recorded source" and case.image == str(made[patient].folder)
        assert len(case.image_files) == SHAPE[0] and not case.left_out_because()
    assert len(listing.reviewed) == 2

    result = export_reviewed(listing.cases, tmp_path / "data", store)
    dataset = open_dataset(tmp_path / "data")
    assert {c.patient for c in dataset.cases} == {"P1", "P2"} and not result.left_out
    for cid, case in result.cases:
        data = load_case(dataset, dataset.case(cid))
        dicom_image = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(case.image))
        assert np.array_equal(sitk.GetArrayFromImage(dicom_image), data.image)
        assert set(np.unique(data.labels)) == {0, 2, 3}


def test_a_restored_layer_keeps_its_recorded_source_when_saved_again(dicom, tmp_path):
    tmp, store, made = dicom
    copy = tmp_path / "annotations"
    shutil.copytree(store, copy)
    m = made["P1"]
    manifest = _manifests(copy)[m.study_uid]
    volume = load_series(scan(str(m.folder)).find(m.series_uid))
    session = Session()
    session.load_volume(volume)
    autosave = LayerAutosave(session, LayerStore(copy))  # no index given: the stored record is kept
    try:
        loaded = autosave.load_series(m.study_uid, m.series_uid, geometry=volume.geometry)
        (stored,) = [s for s in loaded.layers if s.manifest["kind"] == "labels"]
        autosave.adopt(loaded.layers, m.study_uid)
        session.add_layer(stored.layer)
        saved_at = json.loads(manifest.read_text())["saved_at"]
        stroke = BrushStroke(stored.layer, SlicePlane.for_view("axial", volume.geometry), SHAPE[0] // 2, 2, 15.0)
        stroke.add(20, 20)
        record_edit(session, stroke.finish())
        assert autosave.flush()
    finally:
        autosave.close()
    doc = json.loads(manifest.read_text())
    assert doc["saved_at"] > saved_at and doc["meta"]["edited"] is True
    assert doc["source"] == {"path": os.path.abspath(m.folder), "series_uid": m.series_uid}


def test_a_series_not_in_the_open_index_records_no_source(tmp_path):
    store, images = tmp_path / "annotations", tmp_path / "images"
    m = write_patient(images, 70, "P1")
    (images / "other").mkdir()
    save_opened(store, images / "P1", m.series_uid, review.ACCEPTED, index_folder=images / "other")
    assert "source" not in json.loads(_manifests(store)[m.study_uid].read_text())  # not guessed
    (case,) = list_cases(store, [], study_db=tmp_path / "no-db").cases
    assert case.image == "" and "saved without its series' location" in case.left_out_because()


def test_an_image_file_is_found_at_its_recorded_source_and_exported(tmp_path):
    store, images = tmp_path / "annotations", tmp_path / "images"
    for name in ("a.nii.gz", "b.nii.gz"):
        save_file_result(store, images / name, review.ACCEPTED)
    manifests = _manifests(store)
    assert sorted(json.loads(p.read_text())["source"]["path"] for p in manifests.values()) == [
        str(images / "a.nii.gz"), str(images / "b.nii.gz")]
    cases = list_cases(store, [], study_db=tmp_path / "no-db").cases
    assert sorted(c.image for c in cases) == [str(images / "a.nii.gz"), str(images / "b.nii.gz")]
    assert all(c.found_in == "recorded source" and not c.left_out_because() for c in cases)
    result = export_reviewed(cases, tmp_path / "data", store)
    dataset = open_dataset(tmp_path / "data")
    assert len(dataset.cases) == 2 and len(result.cases) == 2
    data = load_case(dataset, dataset.cases[0])
    assert data.image.min() < -500 and set(np.unique(data.labels)) == {0, 2, 3}

    # a recorded file whose path is not the layer's study key (another study's image there) is not used
    a, b = (p for p in manifests.values())
    _rewrite(a, lambda doc: doc["source"].update(path=json.loads(b.read_text())["source"]["path"]))
    cases = {c.layer_id: c for c in list_cases(store, [], study_db=tmp_path / "no-db").cases}
    moved = cases[json.loads(a.read_text())["layer_id"]]
    assert moved.image == "" and "not at its recorded source" in moved.left_out_because()
    assert cases[json.loads(b.read_text())["layer_id"]].found_in == "recorded source"


def test_a_deleted_recorded_folder_falls_back_to_the_folders_given(tmp_path):
    store, images, elsewhere = tmp_path / "annotations", tmp_path / "images", tmp_path / "elsewhere"
    m = write_patient(images, 80, "P1")
    save_opened(store, images / "P1", m.series_uid, review.ACCEPTED)
    shutil.copytree(images / "P1", elsewhere / "P1")
    shutil.rmtree(images)
    listing = list_cases(store, [], study_db=tmp_path / "no-db")
    (case,) = listing.cases
    assert case.image == "" and case.found_in == "" and not listing.problems  # a missing path is simply skipped
    assert case.left_out_because().startswith("its image was not found: not at its recorded source "
                                              f"{m.folder}")
    (case,) = list_cases(store, [elsewhere], study_db=tmp_path / "no-db").cases
    assert case.found_in == f"folder {elsewhere}" and case.image == str(elsewhere / "P1" / m.folder.name)
    assert case.patient_id == "P1" and not case.left_out_because()


def test_an_old_manifest_without_the_record_still_lists_in_the_old_order(dicom, tmp_path):
    tmp, store, made = dicom
    copy = tmp_path / "annotations"
    shutil.copytree(store, copy)
    m = made["P2"]
    manifest = _manifests(copy)[m.study_uid]
    _rewrite(manifest, lambda doc: doc.pop("source"))
    images = tmp / "images"
    cases = {c.study_uid: c for c in list_cases(copy, [], study_db=tmp_path / "no-db").cases}
    assert cases[m.study_uid].image == "" and "saved without" in cases[m.study_uid].left_out_because()
    assert cases[made["P1"].study_uid].found_in == "recorded source"
    cases = {c.study_uid: c for c in list_cases(copy, [images], study_db=tmp_path / "no-db").cases}
    assert cases[m.study_uid].found_in == f"folder {images}" and cases[m.study_uid].state == EDITED
    with StudyDatabase(tmp_path / "db") as db:
        stored, _ = db.import_paths([str(m.folder)])
        assert len(stored) == SHAPE[0]
    cases = {c.study_uid: c for c in list_cases(copy, [images], study_db=tmp_path / "db").cases}
    assert cases[m.study_uid].found_in == "study database"  # the database before the folders, as before
    assert cases[m.study_uid].image.startswith(str(tmp_path / "db"))
    # the store still restores it
    loaded = LayerStore(copy).load(m.study_uid, m.series_uid)
    assert not loaded.messages and [s.manifest["kind"] for s in loaded.layers] == ["labels"]


@pytest.mark.parametrize("bad", [7, "/a/folder", {"path": 42, "series_uid": ""}, {"path": "", "series_uid": ""},
                                 {"path": "/x", "series_uid": ["1.2"]}, {"series_uid": "1.2"}])
def test_a_malformed_record_sets_the_manifest_aside_with_a_message(dicom, tmp_path, bad):
    tmp, store, made = dicom
    copy = tmp_path / "annotations"
    shutil.copytree(store, copy)
    m = made["P1"]
    manifest = _manifests(copy)[m.study_uid]
    _rewrite(manifest, lambda doc: doc.update(source=bad))
    listing = list_cases(copy, [], study_db=tmp_path / "no-db")
    assert [c.patient_id for c in listing.cases] == ["P2"]  # the other study still lists
    (problem,) = listing.problems
    assert problem.startswith(f"{manifest}: source") and manifest.exists()  # listing reports, renames nothing

    loaded = LayerStore(copy).load(m.study_uid, m.series_uid)
    assert not loaded.layers and len(loaded.messages) == 1 and "source" in loaded.messages[0]
    assert "kept as" in loaded.messages[0] and not manifest.exists()
    assert all(".corrupt-" in p.name and p.exists() for p in loaded.kept_as)
