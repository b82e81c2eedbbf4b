"""Reviewed AI results as training data (viewer/logic/reviewed_data.py, viewer/logic/reviewed_export.py,
``radview-cli ai dataset --from-reviewed``): a real store made by the real autosaves over real DICOM phantom studies
(tests/ai/reviewed_store.py), listed with its review states, exported as a dataset that ai.training.dataset opens with
its labels and patient split; rejected, unreviewed and other-grid layers left out with their reasons. No training here
(a run from a folder exists already)."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import SimpleITK as sitk
from reviewed_store import LABELS, make_store

from ai.training.dataset import load_case, open_dataset
from radview_base.cancel import Cancelled
from viewer.cli.main import main
from viewer.logic.reviewed_data import ACCEPTED, EDITED, NOT_REVIEWED, REJECTED, list_cases
from viewer.logic.reviewed_export import EXPORT_FILE, ReviewedDataError, export_reviewed
from viewer.net.study_db import StudyDatabase


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reviewed")
    store, images, made = make_store(tmp)
    return tmp, store, images, made


def _by_patient(listing):
    return {c.patient_id: c for c in listing.cases}


def test_the_store_is_listed_with_review_states_images_and_reasons(made):
    tmp, store, images, _ = made
    before = sorted(p.name for p in store.rglob("*"))
    listing = list_cases(store, [images], study_db=tmp / "no-db")
    assert sorted(p.name for p in store.rglob("*")) == before  # listing writes nothing
    cases = _by_patient(listing)
    assert set(cases) == {"P1", "P2", "P3", "P4", "P5"} and not listing.problems
    assert {p: c.state for p, c in cases.items()} == {"P1": ACCEPTED, "P2": EDITED, "P3": REJECTED,
                                                      "P4": NOT_REVIEWED, "P5": ACCEPTED}
    assert cases["P1"].review_text.startswith("reviewed by dr_test") and cases["P1"].decided_by == "dr_test"
    assert cases["P3"].review_text.startswith("AI result rejected by dr_test")
    for case in cases.values():
        assert case.model_id == "test-lungs" and dict(case.labels) == LABELS
        assert case.image == str(images / case.patient_id / "ct_thin") and case.found_in == f"folder {images}"
        assert len(case.image_files) == 24
    assert sorted(p for p, c in cases.items() if not c.left_out_because()) == ["P1", "P2"]
    assert sorted(c.patient_id for c in listing.reviewed) == ["P1", "P2"]
    assert cases["P3"].left_out_because().startswith("rejected")
    assert cases["P4"].left_out_because().startswith("not reviewed")
    assert "another grid than its image" in cases["P5"].problem and "7.500 mm" in cases["P5"].problem


def test_without_the_images_a_case_has_no_patient_and_says_why(made):
    tmp, store, _, _ = made
    listing = list_cases(store, [], study_db=tmp / "no-db")
    assert len(listing.cases) == 5 and not listing.reviewed
    for case in listing.cases:
        assert case.image == "" and case.patient_id == ""
        if case.state in (ACCEPTED, EDITED):
            assert "image was not found" in case.left_out_because()


def test_a_series_in_the_local_study_database_is_found_there(made, tmp_path):
    tmp, store, images, made_ = made
    with StudyDatabase(tmp_path / "db") as db:
        stored, skipped = db.import_paths([str(made_["P2"].folder)])
        assert len(stored) == 24 and not skipped
    cases = _by_patient(list_cases(store, [], study_db=tmp_path / "db"))
    p2 = cases["P2"]
    assert p2.found_in == "study database" and p2.image.startswith(str(tmp_path / "db"))
    assert not p2.left_out_because() and cases[""].image == ""


def test_export_writes_a_dataset_that_training_opens_split_by_patient(made, tmp_path):
    tmp, store, images, _ = made
    listing = list_cases(store, [images], study_db=tmp / "no-db")
    seen = []
    result = export_reviewed(listing.cases, tmp_path / "data", store, progress=lambda d, t, m: seen.append((d, t)))
    assert seen[-1] == (5, 5)
    assert sorted(c.patient_id for _, c in result.cases) == ["P1", "P2"]
    reasons = {c.patient_id: r for c, r in result.left_out}
    assert set(reasons) == {"P3", "P4", "P5"}
    assert reasons["P3"].startswith("rejected") and reasons["P4"].startswith("not reviewed")
    assert "another grid than its image" in reasons["P5"]

    dataset = open_dataset(tmp_path / "data")
    assert dataset.labels == ("lung_left", "lung_right") and dataset.label_ids == (2, 3)
    assert {c.patient for c in dataset.cases} == {"P1", "P2"}
    assert len(dataset.training) == 1 and len(dataset.validation) == 1  # one patient each side
    assert {dataset.case(i).patient for i in dataset.training} != {dataset.case(i).patient for i in dataset.validation}
    record = json.loads((tmp_path / "data" / EXPORT_FILE).read_text())
    assert {r["patient_id"] for r in record["left_out"]} == {"P3", "P4", "P5"}
    assert not list(tmp_path.glob(".data.tmp-*"))  # the temporary folder was renamed into place

    # geometry travels with the pixels: the image is the series on its own grid, the labels the stored voxels
    for cid, case in result.cases:
        data = load_case(dataset, dataset.case(cid))
        assert data.geometry.max_corner_distance(case.geometry) < 1e-3
        assert data.image.shape == case.geometry.shape_zyx and data.image.min() < -500  # HU (air)
        assert set(np.unique(data.labels)) == {0, 2, 3}
        dicom = sitk.ReadImage(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(case.image))
        assert np.array_equal(sitk.GetArrayFromImage(dicom), data.image)
        source = json.loads((tmp_path / "data" / cid / "source.json").read_text())
        assert source["layer_id"] == case.layer_id and source["review_state"] == case.state
    p1, p2 = (load_case(dataset, dataset.case(cid)) for cid, _ in sorted(result.cases, key=lambda x: x[1].patient_id))
    assert not np.array_equal(p1.labels, p2.labels)  # P2's painted stroke went into its export


def test_a_non_empty_folder_is_refused_an_earlier_export_replaced_only_when_asked(made, tmp_path):
    tmp, store, images, _ = made
    cases = list_cases(store, [images], study_db=tmp / "no-db").cases
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ReviewedDataError, match="not empty"):
        export_reviewed(cases, tmp_path / "mine", store, replace=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    export_reviewed(cases, tmp_path / "data", store)
    with pytest.raises(ReviewedDataError, match="not empty"):
        export_reviewed(cases, tmp_path / "data", store)
    again = export_reviewed(cases, tmp_path / "data", store, replace=True)
    assert len(again.cases) == 2 and (tmp_path / "data" / EXPORT_FILE).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_dataset_training_would_refuse_is_not_written_and_says_why(made, tmp_path):
    tmp, store, images, _ = made
    cases = [c for c in list_cases(store, [images], study_db=tmp / "no-db").cases if c.patient_id == "P1"]
    with pytest.raises(ReviewedDataError, match="at least 2 patients"):
        export_reviewed(cases, tmp_path / "one", store)
    with pytest.raises(ReviewedDataError, match="no case to export.*rejected"):
        export_reviewed([c for c in list_cases(store, [images], study_db=tmp / "no-db").cases
                         if c.state == REJECTED], tmp_path / "none", store)
    assert not list(tmp_path.iterdir())  # nothing left behind, not even the temporary folder
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        export_reviewed(cases, tmp_path / "cancelled", store, cancel=cancel)
    assert not list(tmp_path.iterdir())


def test_the_cli_lists_and_exports(made, tmp_path, capsys):
    tmp, store, images, _ = made
    common = ["ai", "dataset", "--from-reviewed", "--store", str(store), "--images", str(images),
              "--study-db", str(tmp / "no-db")]
    assert main([*common, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sorted((r["patient_id"], r["state"]) for r in rows) == [
        ("P1", ACCEPTED), ("P2", EDITED), ("P3", REJECTED), ("P4", NOT_REVIEWED), ("P5", ACCEPTED)]
    assert sorted(r["patient_id"] for r in rows if not r["left_out_because"]) == ["P1", "P2"]
    assert main([*common, "--out", str(tmp_path / "data")]) == 0
    err = capsys.readouterr().err
    assert "2 cases of 2 patients" in err and "3 left out" in err
    assert open_dataset(tmp_path / "data").describe().startswith("2 cases of 2 patients")
    assert main([*common, "--out", str(tmp_path / "data")]) == 2  # refused: not empty (no --replace)
    assert "not empty" in capsys.readouterr().err


def test_an_image_file_opened_on_its_own_is_found_by_its_study_key(tmp_path):
    from reviewed_store import save_file_result

    store, images = tmp_path / "annotations", tmp_path / "images"
    for name, state in (("a.nii.gz", ACCEPTED), ("b.nii.gz", ACCEPTED), ("c.nii.gz", REJECTED)):
        save_file_result(store, images / name, state)
    cases = list_cases(store, [images], study_db=tmp_path / "no-db").cases
    assert sorted((c.image, c.state) for c in cases) == [(str(images / "a.nii.gz"), ACCEPTED),
                                                         (str(images / "b.nii.gz"), ACCEPTED),
                                                         (str(images / "c.nii.gz"), REJECTED)]
    assert all(c.series_uid == "" and c.patient_id == "" and c.study_uid.startswith("file-") for c in cases)
    result = export_reviewed(cases, tmp_path / "data", store)
    dataset = open_dataset(tmp_path / "data")
    assert len(dataset.cases) == 2 and {c.patient for c in dataset.cases} == {f"study {c.study_uid}" for c in cases
                                                                              if c.state == ACCEPTED}
    assert [c.image for c, _ in result.left_out] == [str(images / "c.nii.gz")]
    data = load_case(dataset, dataset.cases[0])
    assert data.image.min() < -500 and set(np.unique(data.labels)) == {0, 2, 3}
