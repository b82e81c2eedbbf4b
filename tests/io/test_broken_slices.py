"""One broken slice no longer takes its series down (issue 15, part 4).

The 134-slice ct-pancreas-tcia series is copied to a temporary folder (links to the real files) with one slice
rewritten broken. A slice that cannot take part — a NaN ImagePositionPatient, pixels that do not decode — is
dropped with its reason and the series opens with a gap warning; a file meta that lies about the transfer
syntax is first decoded as declared, then as what its bytes really are, and only dropped where they cannot tell.
Every other slice must hold exactly the values the untouched series gives.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import UID
from reference import data_path

from viewer.io.dicom_index import scan
from viewer.io.series_loader import load_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

VICTIM = 66  # 1-067.dcm, in the middle of the stack


@pytest.fixture(scope="module")
def pancreas():
    folder = data_path("ct-pancreas-tcia")
    files = sorted(folder.glob("*.dcm"))
    assert len(files) == 134
    (entry,) = scan(str(folder)).series
    return files, load_series(entry)


def _write_lying(path: Path, ds: pydicom.Dataset, declared: str, implicit: bool) -> None:
    """Write ``ds`` encoded as ``implicit``/explicit VR little endian, under a file meta declaring ``declared``
    (pydicom's writer refuses such a file, so meta and dataset are written separately)."""
    meta = ds.file_meta
    meta.TransferSyntaxUID = UID(declared)
    head = DicomBytesIO()
    head.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, implicit
    write_dataset(body, ds)
    path.write_bytes(head.getvalue() + body.getvalue())


def _broken_copy(files: list[Path], folder: Path, kind: str) -> Path:
    folder.mkdir()
    for i, src in enumerate(files):
        dst = folder / src.name
        if i != VICTIM:
            os.symlink(src, dst)
            continue
        ds = pydicom.dcmread(src)
        if kind == "nan-position":
            ds.ImagePositionPatient = ["nan", "nan", "nan"]
            ds.save_as(dst)
        elif kind == "declares-jpeg-holds-native":
            _write_lying(dst, ds, "1.2.840.10008.1.2.4.50", implicit=True)
        elif kind == "declares-explicit-is-implicit":
            _write_lying(dst, ds, "1.2.840.10008.1.2.1", implicit=True)
        elif kind == "declares-implicit-is-explicit":
            _write_lying(dst, ds, "1.2.840.10008.1.2", implicit=False)
        elif kind == "declares-j2k-holds-rle":
            ds.compress(pydicom.uid.RLELossless)
            _write_lying(dst, ds, "1.2.840.10008.1.2.4.90", implicit=False)
        elif kind == "declares-j2k-holds-garbage":
            rng = np.random.default_rng(15)
            ds.PixelData = encapsulate([rng.integers(0, 256, 6000, dtype=np.uint8).tobytes()])
            ds["PixelData"].VR = "OB"
            ds["PixelData"].is_undefined_length = True
            _write_lying(dst, ds, "1.2.840.10008.1.2.4.90", implicit=False)
        else:
            raise AssertionError(kind)
    return folder


def _victim_z(files) -> float:
    return float(pydicom.dcmread(files[VICTIM], stop_before_pixels=True).ImagePositionPatient[2])


@pytest.mark.parametrize("kind", ["nan-position", "declares-j2k-holds-garbage"])
def test_broken_slice_is_dropped_with_its_reason_and_a_gap_warning(tmp_path, pancreas, kind):
    files, reference = pancreas
    folder = _broken_copy(files, tmp_path / kind, kind)
    index = scan(str(folder))
    (entry,) = index.series  # one series: the broken slice does not split it off as a 2D part
    assert entry.loadable and entry.key == entry.series_uid
    vol = load_series(entry)
    victim = files[VICTIM].name
    gap = f"a gap at z={_victim_z(files):.1f} mm, shown as an empty slice"
    (warning,) = [w for w in vol.warnings if "dropped" in w]
    if kind == "nan-position":  # found by the index: the slice is not in the volume's plan
        assert entry.n_images == 133 and entry.dropped[0][0].endswith(victim)
        assert warning.startswith(f"1 slice of 134 dropped ({victim}: ImagePositionPatient (nan")
        assert any(s.path.endswith(victim) and "ImagePositionPatient" in s.reason for s in index.skipped)
        assert not any("missing slice" in w for w in vol.warnings)  # one warning for one gap
    else:  # found on loading: its pixels do not decode as declared, and the bytes are no codec's
        assert entry.n_images == 134
        assert warning.startswith(f"1 slice of 134 dropped ({victim}: cannot decode JPEG 2000")
    assert warning.endswith(gap)
    assert vol.array.shape == reference.array.shape and vol.geometry.is_close(reference.geometry, 1e-6)
    z = int(round(vol.geometry.world_to_index(
        np.array(pydicom.dcmread(files[VICTIM], stop_before_pixels=True).ImagePositionPatient, float))[0]))
    assert np.all(vol.array[z] == vol.array.min())  # empty, not invented
    kept = [k for k in range(134) if k != z]
    np.testing.assert_array_equal(vol.array[kept], reference.array[kept])
    assert vol.meta["dropped"] and vol.meta["dropped"][0][0].endswith(victim)


@pytest.mark.parametrize("kind", ["declares-jpeg-holds-native", "declares-explicit-is-implicit",
                                  "declares-implicit-is-explicit", "declares-j2k-holds-rle"])
def test_lying_transfer_syntax_is_read_as_what_the_bytes_are(tmp_path, pancreas, kind):
    files, reference = pancreas
    folder = _broken_copy(files, tmp_path / kind, kind)
    index = scan(str(folder))
    assert not index.skipped
    (entry,) = index.series
    vol = load_series(entry)
    assert not any("dropped" in w for w in vol.warnings)
    assert not vol.meta["lossy"]  # a lossy UID over uncompressed bytes is not lossy pixel data
    np.testing.assert_array_equal(vol.array, reference.array)
