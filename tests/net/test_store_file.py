"""A C-STORE's data set turned into the file radview writes (viewer.net.store_file) — the File Meta Information
byte for byte what pynetdicom writes, the header read from the data set's first elements only — on the real files
of ../shared/data; and a C-GET from a real Orthanc writes each instance's data set exactly as the node sent it."""
from __future__ import annotations

import dataclasses
from io import BytesIO
from pathlib import Path

import pytest
from pacs_cases import CALLING, CT_SERIES, CT_SLICES, CT_STUDY
from reference import data_path

from viewer.net.instance_header import HeaderError, header_of_bytes, header_of_file
from viewer.net.store_file import LAST_HEADER_TAG, ReceivedDataSet, file_prefix, header_of_data_set


def _files() -> list[Path]:
    """Real files of every kind at hand: CT slices, the pydicom/dcmtk test objects (compressed, big endian,
    deflated, odd UIDs), MR, the odd ones."""
    out = sorted(data_path("ct-pancreas-tcia").glob("*.dcm"))[:5]
    for name, most in (("dicom-objects", 500), ("odd-dicom", 500), ("mr-philips", 20)):
        folder = data_path(name)
        if folder.is_dir():
            out += sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".dcm", ""))[:most]
    return out


def _split(path: Path):
    """(data set bytes, transfer syntax, SOP class UID, SOP instance UID) of a DICOM file, or None."""
    import pydicom
    from pydicom.filereader import _read_file_meta_info

    raw = path.read_bytes()
    if raw[128:132] != b"DICM":
        return None
    fp = BytesIO(raw)
    fp.seek(132)
    try:
        meta = _read_file_meta_info(fp)
    except Exception:  # noqa: BLE001 (an odd file whose meta pydicom itself cannot read: not a C-STORE case)
        return None
    ts = str(meta.get("TransferSyntaxUID", ""))
    if not ts:
        return None
    try:
        pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001
        return None
    return raw[fp.tell():], ts, str(meta.get("MediaStorageSOPClassUID", "")), \
        str(meta.get("MediaStorageSOPInstanceUID", ""))


@pytest.fixture(scope="module")
def cases():
    found = [(p, s) for p in _files() if (s := _split(p)) is not None]
    if len(found) < 10:
        pytest.skip("the shared DICOM files are not here")
    return found


def test_the_file_meta_is_byte_for_byte_what_pynetdicom_writes(cases):
    from pynetdicom.dsutils import create_file_meta, encode_file_meta

    syntaxes = set()
    for _path, (_data, ts, sop_class, sop_uid) in cases:
        expected = b"\x00" * 128 + b"DICM" + encode_file_meta(
            create_file_meta(sop_class_uid=sop_class, sop_instance_uid=sop_uid, transfer_syntax=ts))
        assert file_prefix(sop_class, sop_uid, ts) == expected, _path
        syntaxes.add(ts)
    assert len(syntaxes) >= 4  # implicit, explicit, big endian, compressed ... all covered
    odd = [sop_uid for _p, (_d, _t, _c, sop_uid) in cases if len(sop_uid) % 2]
    assert odd, "a UID of odd length (padded with a NUL) is among them"


def test_the_header_from_the_data_set_is_the_files_header(cases):
    from pydicom.uid import UID

    kinds = set()
    for path, (data, ts, sop_class, sop_uid) in cases:
        try:
            expected = header_of_file(str(path))
        except HeaderError:
            with pytest.raises(HeaderError):
                header_of_data_set(BytesIO(data), ts, sop_class, sop_uid)
            continue
        assert header_of_data_set(BytesIO(data), ts, sop_class, sop_uid) == expected, path
        uid = UID(ts)
        if uid.is_transfer_syntax:
            kinds.add("implicit" if uid.is_implicit_VR else "big endian" if not uid.is_little_endian else "explicit")
    assert {"implicit", "explicit", "big endian"} <= kinds


def test_a_deflated_data_set_gives_the_same_header(cases, tmp_path):
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    path = next(p for p, _split_ in cases if "ct-pancreas" in str(p))
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = tmp_path / "deflated.dcm"
    ds.save_as(out, enforce_file_format=True)
    data, ts, sop_class, sop_uid = _split(out)
    assert ts == DeflatedExplicitVRLittleEndian and len(data) < path.stat().st_size // 2  # compressed indeed
    assert header_of_data_set(BytesIO(data), ts, sop_class, sop_uid) == \
        dataclasses.replace(header_of_file(str(path)), transfer_syntax=ts)


def _header_end(data: bytes, ts: str) -> int:
    """Where the first element after Instance Number starts."""
    from pydicom.filereader import read_dataset
    from pydicom.uid import UID

    fp = BytesIO(data)
    read_dataset(fp, UID(ts).is_implicit_VR, True, stop_when=lambda tag, vr, length: tag > LAST_HEADER_TAG)
    return fp.tell()


def test_nothing_after_instance_number_is_read(cases):
    path, (data, ts, sop_class, sop_uid) = next(c for c in cases if "ct-pancreas" in str(c[0]))
    end = _header_end(data, ts)
    assert 0 < end < len(data) // 10  # the header is a small part of the slice
    garbled = data[:end] + b"\xff" * (len(data) - end)
    assert header_of_data_set(BytesIO(garbled), ts, sop_class, sop_uid) == header_of_file(str(path))
    with pytest.raises(HeaderError), pytest.warns(UserWarning):  # reading on would have met the garbage
        header_of_bytes(file_prefix(sop_class, sop_uid, ts) + garbled)


def test_a_data_set_without_uids_or_cut_short_is_a_header_error(cases):
    _path, (data, ts, sop_class, sop_uid) = next(c for c in cases if "ct-pancreas" in str(c[0]))
    end = _header_end(data, ts)
    with pytest.raises(HeaderError):
        header_of_data_set(BytesIO(data[:40]), ts, sop_class, sop_uid)  # cut inside the first elements
    with pytest.raises(HeaderError):
        header_of_data_set(BytesIO(b"\x08\x00\x16\x00UI\xff\x00" + b"1" * 20), ts, "", "")
    assert header_of_data_set(BytesIO(data[:end]), ts, sop_class, sop_uid).sop_uid == sop_uid


def test_the_written_file_is_the_received_data_set_behind_the_meta(cases, tmp_path):
    import numpy as np
    import pydicom

    path, (data, ts, sop_class, sop_uid) = next(c for c in cases if "ct-pancreas" in str(c[0]))
    received = ReceivedDataSet(BytesIO(data), sop_class, sop_uid, ts)
    out = tmp_path / "x.dcm"
    received.write(str(out))
    assert out.read_bytes() == file_prefix(sop_class, sop_uid, ts) + data == received.encoded()
    assert received.header() == header_of_file(str(path))
    assert np.array_equal(pydicom.dcmread(out).pixel_array, pydicom.dcmread(path).pixel_array)


def test_a_c_get_writes_each_instance_whole_behind_pynetdicoms_file_meta(dimse_node, ct_folder, tmp_path):
    """Each file a C-GET writes is pynetdicom's file meta for the syntax the instance came in, then a data set
    with every element of the original file, pixels included (Orthanc sends the implicit VR originals as explicit
    VR: the bytes differ, the elements do not)."""
    import pydicom

    from viewer.logic.pacs import RetrieveRequest, retrieve

    originals = {}
    for p in sorted(ct_folder.glob("*.dcm")):
        ds = pydicom.dcmread(p)
        originals[str(ds.SOPInstanceUID)] = ds
    result = retrieve(RetrieveRequest(dimse_node, CT_STUDY, CT_SERIES, "get", CALLING, out_dir=str(tmp_path)))
    assert result.complete and len(result.arrived) == CT_SLICES
    written = sorted(Path(result.destination).glob("*.dcm"))
    assert len(written) == CT_SLICES
    for f in written:
        data, ts, sop_class, sop_uid = _split(f)
        assert f.read_bytes()[:-len(data)] == file_prefix(sop_class, sop_uid, ts), f.name
        got, original = pydicom.dcmread(f), originals[f.stem]
        assert sop_uid == f.stem and sop_class == str(original.SOPClassUID)
        assert [e.tag for e in got] == [e.tag for e in original], f.name
        for element in original:
            assert got[element.tag].value == element.value, (f.name, element.tag)
