"""A DICOMDIR (a patient's CD) read through its records: ReferencedFileIDs resolved case-insensitively, never
outside its folder, only the files it lists read, and nothing written next to it (read-only media).

DICOMDIRs are made with pydicom's FileSet API (always) and with dcmtk's ``dcmmkdir`` (when installed).
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess

import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet
from reference import data_path
from test_seg_dicom import write_ct_series, write_seg

from viewer.io import dicomdir, loaders
from viewer.io.dicomdir import DicomDirError, read_dicomdir, resolve_file_id, scan_dicomdir
from viewer.io.seg_file import read_seg
from viewer.logic import open_study


def make_cd(out, sources) -> str:
    """A DICOMDIR and its files, written by pydicom's FileSet into the empty folder ``out``."""
    fs = FileSet()
    for path in sources:
        fs.add(str(path))
    fs.write(str(out))
    return os.path.join(str(out), "DICOMDIR")


@pytest.fixture
def study_files(tmp_path):
    """A synthetic 4-slice CT and a SEG of its slices 1 and 3 (outside any DICOMDIR)."""
    src = tmp_path / "src"
    paths = write_ct_series(src / "ct")
    mask = np.zeros((2, 16, 16), bool)
    mask[0, 4:8, 4:8] = mask[1, 1:3, 1:5] = True
    seg = write_seg(src / "seg.dcm", [paths[1], paths[3]], [mask], names=("Liver",), lab=((41661 / 65535 * 100,
                                                                                             20.0, 10.0),))
    return paths, seg


@pytest.fixture
def cd(tmp_path, study_files):
    paths, seg = study_files
    make_cd(tmp_path / "cd", paths + [seg])
    return tmp_path / "cd"


def listed_files(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(r, f), folder) for r, _, fs in os.walk(folder) for f in fs)


def snapshot(folder) -> dict:
    """Every entry under ``folder`` (the folder too) with its kind, size, mode and modification time."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in [""] + dirs + files:
            path = os.path.join(root, name) if name else root
            st = os.lstat(path)
            out[os.path.relpath(path, folder)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mode, st.st_mtime_ns)
    return out


def rewrite(path, change) -> None:
    """Change a DICOMDIR's records with ``change(dataset)`` and save it with its record offsets still right."""
    ds = pydicom.dcmread(path)
    records = ds.DirectoryRecordSequence
    old = [int(r.seq_item_tell) for r in records]
    change(ds)
    ds.save_as(path)
    again = pydicom.dcmread(path)
    moved = dict(zip(old, [int(r.seq_item_tell) for r in again.DirectoryRecordSequence]))
    for record in again.DirectoryRecordSequence:
        for tag in ("OffsetOfTheNextDirectoryRecord", "OffsetOfReferencedLowerLevelDirectoryEntity"):
            value = int(record.get(tag, 0) or 0)
            if value:
                setattr(record, tag, moved.get(value, value))
    for tag in ("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity",
                "OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity"):
        setattr(again, tag, moved.get(int(again.get(tag, 0)), int(again.get(tag, 0))))
    again.save_as(path)


def image_records(path):
    return [r for r in pydicom.dcmread(path).DirectoryRecordSequence if "ReferencedFileID" in r]


# --- opening through the records ---------------------------------------------------------------------------------
def test_a_folder_with_a_dicomdir_opens_through_it(cd):
    candidates = loaders.examine(str(cd))
    best = candidates[0]
    assert best.kind == loaders.DICOM_FILES and best.via == loaders.DICOMDIR
    plain = next(c for c in candidates if not c.via)
    assert best.confidence > plain.confidence
    index = loaders.load(best)
    assert index.root == str(cd)
    (series,) = index.series
    assert series.n_images == 4 and series.loadable
    (seg,) = index.segmentations
    assert seg.referenced_series_uids == (series.series_uid,) and seg.labels == {1: "Liver"}
    assert index.n_files == 5 and not index.skipped
    volume = open_study.load_series(series)
    labels = read_seg(seg.path, volume)
    assert [bool(labels.array[z].any()) for z in range(4)] == [False, True, False, True]


def test_the_dicomdir_file_itself_opens_the_same_study(cd):
    best = loaders.examine(str(cd / "DICOMDIR"))[0]
    assert best.via == loaders.DICOMDIR and best.confidence > 0.9
    index = open_study.open_path(str(cd / "DICOMDIR"))
    assert open_study.is_study_index(index) and index.root == str(cd) and len(index.series) == 1


def test_only_the_files_the_records_list_are_read(cd, tmp_path, monkeypatch):
    extra = write_ct_series(cd / "EXTRA", n=3, seed=7)  # on the medium, not in the DICOMDIR
    (cd / "README.TXT").write_text("not listed\n")
    read = []
    original = dicomdir.read_header
    monkeypatch.setattr(dicomdir, "read_header", lambda path: read.append(path) or original(path))
    index = loaders.load(loaders.examine(str(cd))[0])
    assert len(index.series) == 1 and index.series[0].n_images == 4
    assert not set(read) & set(extra) and all("EXTRA" not in p and "README" not in p for p in read)
    listing = read_dicomdir(str(cd))
    assert sorted(listing.files) == sorted(read) and len(read) == 5
    assert listing.n_records >= 5 + 4  # patient, study, two series and five instances
    # the plain scan of the same folder would have read them all
    from viewer.io.dicom_index import scan

    assert len(scan(str(cd)).series) == 2  # the CT and EXTRA


def test_a_read_only_copy_opens_and_nothing_is_written(cd, tmp_path):
    medium = tmp_path / "medium"
    shutil.copytree(cd, medium)
    for root, dirs, files in os.walk(medium):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), os.stat(os.path.join(root, name)).st_mode & ~0o222)
    os.chmod(medium, os.stat(medium).st_mode & ~0o222)
    before, before_parent = snapshot(medium), sorted(os.listdir(tmp_path))
    try:
        index = open_study.open_path(str(medium))
        volume = open_study.load_series(open_study.choose_series(index))
        layer = open_study.read_segmentation(index.segmentations[0].path, volume, index.series[0], index)
        assert layer.label_map.labels == {1: "Liver"}
        from viewer.io.thumbnail import series_thumbnail

        series_thumbnail(index.series[0], 64)
        assert snapshot(medium) == before  # tests run as root: the modes do not stop writes, so compare
        assert sorted(os.listdir(tmp_path)) == before_parent
    finally:
        for root, _dirs, files in os.walk(medium):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)


# --- resolving ReferencedFileIDs -----------------------------------------------------------------------------------
def test_file_ids_resolve_case_insensitively_and_with_iso9660_versions(cd):
    def lower(folder):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                lower(path)
            if name != "DICOMDIR":
                new = name.lower() if os.path.isdir(path) else name.lower() + ".;1"
                os.rename(path, os.path.join(folder, new))

    lower(str(cd))
    assert all(p == "DICOMDIR" or p == p.lower() for p in listed_files(cd))
    index = open_study.open_path(str(cd))
    assert len(index.series) == 1 and index.series[0].n_images == 4 and len(index.segmentations) == 1
    assert all(f.startswith(str(cd)) and f.endswith(".;1") for f in index.series[0].files)
    assert resolve_file_id(str(cd), ["PT000000", "ST000000", "SE000000", "IM000000"]).endswith(
        os.path.join("pt000000", "st000000", "se000000", "im000000.;1"))


def test_file_ids_never_lead_outside_the_dicomdir_folder(cd, tmp_path, study_files):
    secret = tmp_path / "SECRET"
    shutil.copy(study_files[0][0], secret)  # a real DICOM file next to the medium
    os.symlink(secret, cd / "LINK")
    for bad in (["..", "SECRET"], ["PT000000", "..", "..", "SECRET"], ["LINK"], [str(secret)], ["A/B"], ["", "X"]):
        with pytest.raises(DicomDirError):
            resolve_file_id(str(cd), bad)
    path = str(cd / "DICOMDIR")
    targets = iter([["..", "SECRET"], ["LINK"]])

    def point_outside(ds):
        for record in [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r][:2]:
            record.ReferencedFileID = next(targets)

    rewrite(path, point_outside)
    read = []
    original = dicomdir.read_header
    dicomdir.read_header = lambda p: read.append(p) or original(p)
    try:
        listing = read_dicomdir(path)
        index = scan_dicomdir(path)
    finally:
        dicomdir.read_header = original
    assert not any(os.path.realpath(p) == str(secret) for p in read)
    reasons = [s.reason for s in listing.missing]
    assert len(reasons) == 2 and all("outside the DICOMDIR's folder" in r for r in reasons)
    outside = [s for s in index.skipped if "outside" in s.reason]
    assert len(outside) == 2 and {s.reason for s in outside} == set(reasons)
    assert index.series[0].n_images == 2  # the two records left


def test_missing_files_and_inactive_records_are_not_read(cd):
    path = str(cd / "DICOMDIR")
    records = image_records(path)
    gone = os.path.join(str(cd), *records[-1].ReferencedFileID)
    os.remove(gone)

    def deactivate(ds):
        [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r][0].RecordInUseFlag = 0

    rewrite(path, deactivate)
    listing = read_dicomdir(path)
    assert gone not in listing.files and len(listing.files) == len(records) - 2
    (missing,) = listing.missing
    assert "not found" in missing.reason and missing.path == gone


def test_a_loop_of_record_offsets_ends(cd):
    path = str(cd / "DICOMDIR")

    def loop(ds):
        last = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r][-1]
        last.OffsetOfTheNextDirectoryRecord = int(ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity)

    rewrite(path, loop)
    assert len(read_dicomdir(path).files) == 5


def test_not_a_dicomdir(tmp_path, study_files):
    fake = tmp_path / "DICOMDIR"
    shutil.copy(study_files[0][0], fake)
    with pytest.raises(DicomDirError, match="not a DICOMDIR"):
        read_dicomdir(str(fake))
    assert all(not c.via for c in loaders.examine(str(tmp_path)))  # the folder is scanned instead


# --- dcmtk ---------------------------------------------------------------------------------------------------------
def dcmmkdir(folder, *inputs) -> str:
    tool = shutil.which("dcmmkdir")
    if tool is None:
        pytest.skip("dcmtk's dcmmkdir is not installed (apt package dcmtk); the FileSet tests cover DICOMDIRs")
    done = subprocess.run([tool, "+r", "-Nxc", "+I", *inputs], cwd=folder, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return os.path.join(str(folder), "DICOMDIR")


def test_a_dcmmkdir_dicomdir_opens_through_its_records(tmp_path, study_files):
    paths, seg = study_files
    cdroot = tmp_path / "dcmtk"
    (cdroot / "DICOM" / "ST1").mkdir(parents=True)
    for i, p in enumerate(paths):
        shutil.copy(p, cdroot / "DICOM" / "ST1" / f"IM{i + 1:06d}")
    shutil.copy(seg, cdroot / "DICOM" / "ST1" / "SEG00001")
    dcmmkdir(cdroot, "DICOM")
    (cdroot / "DICOM" / "ST1" / "NOTLISTD").write_bytes((cdroot / "DICOM" / "ST1" / "IM000001").read_bytes())
    best = loaders.examine(str(cdroot))[0]
    assert best.via == loaders.DICOMDIR
    index = loaders.load(best)
    (series,) = index.series
    assert series.n_images == 4 and len(index.segmentations) == 1 and not index.skipped
    assert "NOTLISTD" not in " ".join(series.files)


def test_a_dcmmkdir_cd_of_the_real_ct_and_its_liver_seg(tmp_path):
    ct, liver = data_path("seg-dcmqi", "ct-3slice"), data_path("seg-dcmqi", "liver.dcm")
    cdroot = tmp_path / "cd"
    (cdroot / "DICOM").mkdir(parents=True)
    for i, p in enumerate(sorted(ct.iterdir())):
        shutil.copy(p, cdroot / "DICOM" / f"IM{i + 1:06d}")
    shutil.copy(liver, cdroot / "DICOM" / "SEG00001")
    dcmmkdir(cdroot, "DICOM")
    index = open_study.open_path(str(cdroot))
    (series,) = index.series
    (seg,) = index.segmentations
    assert seg.labels == {1: "Liver"} and series.series_uid in seg.referenced_series_uids
    volume = open_study.load_series(series)
    layer = open_study.read_segmentation(seg.path, volume, series, index)
    assert layer.label_map.labels == {1: "Liver"} and layer.colors[1] == (221, 130, 101)
