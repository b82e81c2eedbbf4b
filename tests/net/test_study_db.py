"""The local study database on real files: import into the managed store, search by every criterion, the same
instance never stored twice, a peer's odd UIDs never choose a path, forget and delete."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pydicom
import pytest
from pacs_cases import CT_PATIENT, CT_SERIES, CT_SLICES, CT_STUDY, no_temporary_files
from reference import data_path

from viewer.net.instance_header import header_of_file, safe_name
from viewer.net.records import InstanceRef, QueryCriteria
from viewer.net.sinks import FolderSink, bytes_writer
from viewer.net.study_db import StudyDatabase, default_root, like_pattern


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """A database holding the CT and the small dcmqi CT (another patient, another date)."""
    db = StudyDatabase(tmp_path_factory.mktemp("library"))
    stored, skipped = db.import_paths([str(data_path("ct-pancreas-tcia")), str(data_path("seg-dcmqi", "ct-3slice"))])
    assert skipped == [] or all("not a readable DICOM" in why for _, why in skipped)
    assert sum(s.new for s in stored) == CT_SLICES + 3
    yield db
    db.close()


@pytest.fixture(scope="module")
def small_ct():
    folder = data_path("seg-dcmqi", "ct-3slice")
    return header_of_file(str(sorted(folder.glob("*.dcm"))[0]))


def test_the_default_folder_is_the_user_data_folder_or_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("RADVIEW_STUDY_DB", raising=False)
    assert default_root().name == "studies" and "radview" in str(default_root())
    monkeypatch.setenv("RADVIEW_STUDY_DB", str(tmp_path))
    assert default_root() == tmp_path


def test_search_by_each_criterion(library, small_ct):
    def found(**criteria) -> set[str]:
        return {s.study_uid for s in library.search(QueryCriteria(**criteria))}

    both = {CT_STUDY, small_ct.study_uid}
    assert found() == both
    assert found(patient_name="pancreas*") == {CT_STUDY}  # wildcards, any case
    assert found(patient_name="*CT-CB_00?") == {CT_STUDY}
    assert found(patient_name="creas-ct") == {CT_STUDY}  # no wildcard: anywhere in the name
    assert found(patient_name="Pancreas") == {CT_STUDY}
    assert found(patient_name="nobody*") == set()
    assert found(patient_id=CT_PATIENT) == {CT_STUDY}
    assert found(patient_id=CT_PATIENT[:-1]) == set()  # an ID matches exactly
    assert found(study_date="20120706") == {CT_STUDY}
    assert found(study_date="20120101-20121231") == {CT_STUDY}
    assert found(study_date="20120707-") == ({small_ct.study_uid} if small_ct.study_date > "20120706" else set())
    assert found(modality="CT") == both and found(modality="MR") == set()
    assert found(description="pancreas") == {CT_STUDY}
    assert found(accession="no-such-accession") == set()
    if small_ct.accession:
        assert found(accession=small_ct.accession) == {small_ct.study_uid}
    [study] = library.search(QueryCriteria(patient_id=CT_PATIENT))
    assert (study.n_series, study.n_instances, study.modalities) == (1, CT_SLICES, ("CT",))
    [series] = library.series_of(CT_STUDY)
    assert (series.series_uid, series.n_instances, series.patient_id) == (CT_SERIES, CT_SLICES, CT_PATIENT)


def test_a_study_opens_from_its_folder_without_scanning_anything_else(library, small_ct):
    from viewer.io.dicom_index import scan

    files = library.files_of(CT_STUDY)
    assert len(files) == CT_SLICES and all(f.startswith(library.location(CT_STUDY)) for f in files)
    index = scan(library.location(CT_STUDY))
    assert [s.series_uid for s in index.series] == [CT_SERIES]
    assert small_ct.study_uid not in {p for f in files for p in Path(f).parts}


def test_the_same_instance_is_never_stored_twice(library):
    stored, _ = library.import_paths([str(data_path("ct-pancreas-tcia"))])
    assert len(stored) == CT_SLICES and not any(s.new for s in stored)
    assert len(library.files_of(CT_STUDY)) == CT_SLICES
    assert len(list(Path(library.location(CT_STUDY, CT_SERIES)).glob("*.dcm"))) == CT_SLICES
    refs = [InstanceRef(CT_STUDY, CT_SERIES, Path(f).stem) for f in library.files_of(CT_STUDY)]
    assert library.present(refs) == {r.sop_uid for r in refs}
    assert library.present([InstanceRef(CT_STUDY, CT_SERIES, "1.2.3")]) == set()


def test_concurrent_copies_of_one_instance_are_written_once(tmp_path):
    src = sorted(data_path("ct-pancreas-tcia").glob("*.dcm"))[0]
    data = src.read_bytes()
    header = header_of_file(str(src))
    for sink in (FolderSink(tmp_path / "folder"), StudyDatabase(tmp_path / "db")):
        results = []

        def put(sink=sink, results=results):
            results.append(sink.put(header, bytes_writer(data)))

        threads = [threading.Thread(target=put) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(r.new for r in results) == 1 and len({r.path for r in results}) == 1
        assert Path(results[0].path).read_bytes() == data
        sink.flush()
        assert no_temporary_files(tmp_path) == []


def test_odd_uids_never_choose_the_path(tmp_path):
    src = sorted(data_path("ct-pancreas-tcia").glob("*.dcm"))[0]
    ds = pydicom.dcmread(str(src))
    ds.StudyInstanceUID = "../../escape"
    ds.SOPInstanceUID = "/etc/passwd"
    odd = tmp_path / "odd.dcm"
    ds.save_as(str(odd))
    with StudyDatabase(tmp_path / "db") as db:
        stored, _ = db.import_paths([str(odd)])
        path = Path(stored[0].path).resolve()
        assert path.is_relative_to((tmp_path / "db" / "store").resolve())
        assert safe_name("../../escape") != "../../escape" and "/" not in safe_name("/etc/passwd")
        assert db.files_of("../../escape") == [str(path)]


def test_non_dicom_files_are_skipped_with_a_reason(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("hello")
    with StudyDatabase(tmp_path / "db") as db:
        stored, skipped = db.import_paths([str(tmp_path / "in")])
    assert stored == [] and len(skipped) == 1 and "readme.txt" in skipped[0][0]


def test_like_patterns_escape_sql_wildcards():
    assert like_pattern("a*b?") == "a%b_"
    assert like_pattern("50%_x") == "%50\\%\\_x%"


def test_forget_keeps_the_files_delete_removes_them(tmp_path):
    with StudyDatabase(tmp_path / "db") as db:
        db.import_paths([str(data_path("seg-dcmqi", "ct-3slice"))])
        [study] = db.search()
        folder = Path(db.location(study.study_uid))
        assert db.forget(study.study_uid) == 3
        assert db.search() == [] and folder.is_dir() and len(list(folder.rglob("*.dcm"))) == 3
        db.import_paths([str(data_path("seg-dcmqi", "ct-3slice"))])  # indexed again from the source
        assert db.delete(study.study_uid) == 3
        assert db.search() == [] and not folder.exists()
        assert os.listdir(db.store) == []
