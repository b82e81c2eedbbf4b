"""No identifying value survives: a unique marker planted in every attribute of PS3.15 Table E.1-1 (at the top
level, in sequence items and two levels down), in private attributes and in attributes the data dictionary does
not know (read with explicit or implicit VR) is absent from every byte of the de-identified file. And the
Type of an attribute decides between removal (Type 3), an empty value (Type 2) and a dummy (Type 1)."""
from __future__ import annotations

import datetime
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from reference import data_path

from viewer.export.deid import DUMMY_VALUES, DeidOptions, deidentify_study
from viewer.export.deid_clean import is_known
from viewer.export.deid_profile import BASIC_PROFILE

#: an even-group tag no data dictionary knows
UNKNOWN_TAGS = (0x00F00010, 0x00F00011)
#: an encapsulated document at the top level is refused as a whole (its content is not de-identified)
REFUSED_AT_TOP = {0x00420011}
#: the Referenced Series Sequence at the top level keeps Type 3 reference sequences (tested on its own below)
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
FIXED = DeidOptions(secret="markers")  # new UIDs are then the same every run: a chance digit match cannot flicker


class Markers:
    """Unique, VR-valid values and the bytes to look for in the output (None: a 2-byte number, checked by value)."""

    def __init__(self):
        self.n = 0
        self.needles: dict[bytes, str] = {}
        self.short: list[tuple[int, object]] = []

    def value(self, tag: int, vr: str, where: str):
        self.n += 1
        n = self.n
        day = datetime.date(1901, 1, 1) + datetime.timedelta(days=n)
        text = {
            "DA": day.strftime("%Y%m%d"), "TM": f"1{n % 10}{n % 60:02d}{n % 59:02d}.{n:06d}",
            "DT": (day + datetime.timedelta(days=20000)).strftime("%Y%m%d") + f"101010.{n:06d}",
            "DS": f"-7{n:05d}.5", "IS": f"-8{n:05d}", "UI": f"1.2.999.4242.{10000 + n}", "AS": f"{n % 1000:03d}W",
            "UR": f"http://mrk.example/{n:05d}",
        }.get(vr)
        if text is None and vr in ("AE", "CS", "SH", "LO", "ST", "LT", "UT", "UC", "PN"):
            text = f"MRK{n:05d}"
        if text is not None:
            self.needles[text.encode()] = where
            return text
        if vr in ("OB", "OW", "UN", "OD", "OF", "OL", "OV"):
            raw = f"MRKB{n:05d}".encode().ljust(16 if vr in ("OD", "OV") else 12 if vr in ("OF", "OL") else 10, b"X")
            self.needles[raw] = where
            return raw
        packed = {"UL": ("<L", 0x51000000 + n), "SL": ("<l", 0x52000000 + n), "FL": ("<f", 1.0e30 + n * 1e24),
                  "FD": ("<d", 7.0e200 + n * 1e190), "UV": ("<Q", 0x5500000000000000 + n),
                  "SV": ("<q", 0x5600000000000000 + n), "AT": ("<HH", 0x7777, n)}.get(vr)
        if packed is not None:
            fmt, *values = packed
            self.needles[struct.pack(fmt, *values)] = where
            return values[0] if vr != "AT" else (0x7777 << 16) | n
        self.short.append((tag, 4000 + n))  # US, SS: two bytes are no unique needle
        return 4000 + n


def _vr(tag: int) -> str:
    return dictionary_VR(tag).split(" or ")[0]


def _item(markers: Markers, where: str) -> Dataset:
    """A sequence item holding a few marked table attributes."""
    item = Dataset()
    for tag in (0x0040A123, 0x0040A124, 0x0040A032, 0x00100010, 0x00080080, 0x00081030, 0x00100020):
        item.add_new(tag, _vr(tag), markers.value(tag, _vr(tag), f"{where} > {tag:08X}"))
    return item


def _plant_table(ds: Dataset, markers: Markers, where: str, top: bool, sequences: bool = True) -> None:
    for tag in sorted(BASIC_PROFILE):
        if not is_known(tag) or (top and (tag >> 16 in (0x0000, 0x0002) or tag in REFUSED_AT_TOP)):
            continue  # pydicom cannot write command or file-meta elements in a stored dataset's top level
        vr = _vr(tag)
        if vr == "SQ":
            if sequences:
                ds.add_new(tag, "SQ", Sequence([_item(markers, f"{where}{tag:08X}[0]")]))
        else:
            ds.add_new(tag, vr, markers.value(tag, vr, f"{where}{tag:08X}"))


def _plant_private_and_unknown(ds: Dataset, markers: Markers, where: str) -> None:
    block = ds.private_block(0x0029, "ACME MRKCREATOR", create=True)
    markers.needles[b"ACME MRKCREATOR"] = f"{where}private creator"
    block.add_new(0x10, "LO", markers.value(0x00291010, "LO", f"{where}private LO"))
    block.add_new(0x11, "UN", markers.value(0x00291011, "UN", f"{where}private UN"))
    block.add_new(0x12, "SQ", Sequence([_item(markers, f"{where}private SQ[0]")]))
    ds.add_new(UNKNOWN_TAGS[0], "LO", markers.value(UNKNOWN_TAGS[0], "LO", f"{where}unknown LO"))
    ds.add_new(UNKNOWN_TAGS[1], "SQ", Sequence([_item(markers, f"{where}unknown SQ[0]")]))


def _marked_file(src: Path, folder: Path, syntax: str) -> tuple[Path, Markers]:
    """A demo CT slice carrying a marker in every table attribute, everywhere."""
    assert not any(is_known(t) for t in UNKNOWN_TAGS)
    markers = Markers()
    ds = pydicom.dcmread(src)
    _plant_table(ds, markers, "", top=True)
    _plant_private_and_unknown(ds, markers, "")
    deep = Dataset()  # two levels down: an item of an item of sequences the table does not list
    _plant_table(deep, markers, "AnatomicRegionSequence[0] > AnatomicRegionModifierSequence[0] > ", top=False,
                 sequences=False)
    _plant_private_and_unknown(deep, markers, "AnatomicRegionSequence[0] > AnatomicRegionModifierSequence[0] > ")
    nested = Dataset()
    _plant_table(nested, markers, "AnatomicRegionSequence[0] > ", top=False)
    _plant_private_and_unknown(nested, markers, "AnatomicRegionSequence[0] > ")
    nested.AnatomicRegionModifierSequence = Sequence([deep])
    ds.AnatomicRegionSequence = Sequence([nested])
    ds.file_meta.TransferSyntaxUID = syntax
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "marked.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path, markers


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"])
@pytest.mark.filterwarnings("ignore:VR lookup failed")  # the unknown attribute read with implicit VR: UN
def test_no_marker_survives_in_any_byte(demo_paths, tmp_path, syntax):
    src = sorted((demo_paths.dicom_dir / "ct_thin").glob("*.dcm"))[0]
    path, markers = _marked_file(src, tmp_path / "src", syntax)
    raw = path.read_bytes()
    assert len(markers.needles) > 1500 and all(needle in raw for needle in markers.needles)  # all were planted
    back = pydicom.dcmread(path)
    assert back[UNKNOWN_TAGS[0]].VR == ("LO" if syntax == ExplicitVRLittleEndian else "UN")
    report = deidentify_study(str(tmp_path / "src"), str(tmp_path / "out"), options=FIXED)
    assert report.n_written == 1 and not report.skipped, report.skipped_lines()
    out = Path(report.written[0].path).read_bytes()
    left = {where for needle, where in markers.needles.items() if needle in out}
    assert not left, f"{len(left)} markers left, e.g. {sorted(left)[:8]}"
    ds = pydicom.dcmread(report.written[0].path)
    planted = dict(markers.short)
    for elem in ds.iterall():
        assert not elem.tag.is_private and is_known(elem.tag), f"{elem.tag} left"
        assert planted.get(int(elem.tag)) is None or elem.value != planted[int(elem.tag)], f"{elem.tag} left"
    assert ds.PatientIdentityRemoved == "YES" and ds.PixelData == back.PixelData


def test_unknown_attributes_of_a_real_explicit_vr_file_are_removed(tmp_path):
    """explicit_VR-UN.dcm: private attributes read with explicit VR UN (a site name and an ID among them)."""
    src = data_path("dicom-objects", "explicit_VR-UN.dcm")
    original = pydicom.dcmread(src)
    secrets = [str(original.PatientName).encode(), str(original.PatientID).encode(), b"Pancreas-CT", b"93781505"]
    assert all(s in src.read_bytes() for s in secrets)
    report = deidentify_study(str(src), str(tmp_path / "out"))
    assert report.n_written == 1, report.skipped_lines()
    out = Path(report.written[0].path).read_bytes()
    assert not [s for s in secrets if s in out]
    assert all(is_known(e.tag) and not e.tag.is_private for e in pydicom.dcmread(report.written[0].path).iterall())


# ----------------------------------------------------------------------------------------- Types
def _write(ds: Dataset, folder: Path, name: str = "x.dcm") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(folder / name, enforce_file_format=True)


def _reference(uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.3"
    item.ReferencedSOPInstanceUID = uid
    return item


def _instance(sop_class: str, **extra) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = "1.2.999.1.1"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.999.1.2", "1.2.999.1.3"
    ds.Modality = "CT" if sop_class.endswith(".2") else "MR"
    ds.PatientName, ds.PatientID = "Doe^Jane", "MRN-1"
    ds.StudyDate, ds.AccessionNumber, ds.ReferringPhysicianName = "20240229", "ACC-9", "Who^Doctor"
    ds.ContentDate, ds.AcquisitionDate, ds.AcquisitionDateTime = "20240229", "20240229", "20240229101010"
    ds.InstitutionName, ds.StationName, ds.PatientSexNeutered = "General Hospital", "CT-ROOM-3", "ALTERED"
    ds.ReferencedStudySequence = Sequence([_reference("1.2.999.1.4")])
    ds.ReferencedPerformedProcedureStepSequence = Sequence([_reference("1.2.999.1.5")])
    ds.ReferencedImageSequence = Sequence([_reference("1.2.999.1.6")])
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def test_type_3_attributes_are_removed_and_type_2_emptied(tmp_path):
    """A CT image: X/Z, X/Z/D and X/Z/U* attributes of Type 3 go; Z and Z/D attributes of Type 2 stay, empty."""
    _write(_instance("1.2.840.10008.5.1.4.1.1.2"), tmp_path / "src")
    report = deidentify_study(str(tmp_path / "src"), str(tmp_path / "out"))
    ds = pydicom.dcmread(report.written[0].path)
    for kw in ("InstitutionName", "StationName", "AcquisitionDate", "AcquisitionDateTime",  # X/Z/D, X/Z, Type 3
               "ReferencedStudySequence", "ReferencedPerformedProcedureStepSequence", "ReferencedImageSequence"):
        assert kw not in ds, f"{kw}: Type 3 in a CT image, must be removed (not emptied)"
    for kw in ("StudyDate", "AccessionNumber", "ReferringPhysicianName", "ContentDate", "PatientSexNeutered"):
        assert kw in ds and ds[kw].value in ("", None), f"{kw}: Type 2 (or 2C), must be present and empty"


def test_type_1_attributes_get_dummies_and_required_references_stay(tmp_path):
    """An enhanced MR image: Content Date (Type 1) and Acquisition DateTime (1C) get dummies, the Referenced
    Performed Procedure Step Sequence (1C in the MR Series module) keeps its item with a new UID."""
    _write(_instance(ENHANCED_MR), tmp_path / "src")
    report = deidentify_study(str(tmp_path / "src"), str(tmp_path / "out"))
    ds = pydicom.dcmread(report.written[0].path)
    assert ds.ContentDate == DUMMY_VALUES["DA"] and ds.AcquisitionDateTime == DUMMY_VALUES["DT"]
    (pps,) = ds.ReferencedPerformedProcedureStepSequence
    assert pps.ReferencedSOPInstanceUID not in ("", "1.2.999.1.5")
    assert "ReferencedStudySequence" not in ds and "InstitutionName" not in ds and "AcquisitionDate" not in ds


def test_references_listed_in_the_common_instance_reference_module_are_kept(tmp_path):
    """Source Image Sequence is Type 3, but an instance that lists the instances it references (Referenced Series
    Sequence, Type 1C) keeps it, its UIDs replaced: else that list would name instances nothing references."""
    series = Dataset()
    series.SeriesInstanceUID = "1.2.999.1.7"
    series.ReferencedInstanceSequence = Sequence([_reference("1.2.999.1.6")])
    ds = _instance("1.2.840.10008.5.1.4.1.1.30", SourceImageSequence=Sequence([_reference("1.2.999.1.6")]),
                   ReferencedSeriesSequence=Sequence([series]))
    _write(ds, tmp_path / "src")
    out = pydicom.dcmread(deidentify_study(str(tmp_path / "src"), str(tmp_path / "out")).written[0].path)
    new = out.SourceImageSequence[0].ReferencedSOPInstanceUID
    assert new != "1.2.999.1.6" and new == out.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].\
        ReferencedSOPInstanceUID
