"""Only regular files are read, and never past their size (issue 15, part 4).

A FIFO in a folder hung the scan forever (opening it waits for a writer); a link to /dev/zero made the header
reader loop, one to /dev/urandom grew memory to 18 GB. Each is now skipped with its reason, in well under a
second. Real files, no mocks: the scan runs in a thread with a timeout, so a regression fails instead of hanging
(and the test then opens the FIFO's other end to let the stuck reader go).
"""
from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from viewer.io.dicom_header import Skipped, read_header
from viewer.io.dicom_index import scan
from viewer.io.pixel_reader import PixelDecodeError, read_bytes_into
from viewer.io.regular_file import BoundedFile, not_regular_reason
from viewer.io.series_loader import load_series

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and /dev need a POSIX system")

LIMIT_S = 1.0


def _write_slices(folder: Path, n: int = 4) -> list[Path]:
    """``n`` small CT slices, 2 mm apart (real DICOM files written with pydicom)."""
    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    paths = []
    for k in range(n):
        ds = Dataset()
        ds.SOPClassUID = pydicom.uid.CTImageStorage
        ds.SOPInstanceUID = generate_uid()
        ds.Modality = "CT"
        ds.PatientID = "REGULAR"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.15.4"
        ds.SeriesInstanceUID = series
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = 8, 6
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = (np.arange(48, dtype="<i2") + 100 * k).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        path = folder / f"s{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _release(path: Path) -> None:
    """Open a FIFO's writing end, non-blocking: a reader stuck on it (a regression) gets end-of-file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:  # no reader waiting: nothing to release
        return
    os.close(fd)


def _within(seconds: float, fn, *args, release: Path | None = None):
    """Run ``fn(*args)`` in a thread; fail (not hang) when it takes longer than ``seconds``."""
    result = {}

    def run():
        try:
            result["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            result["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if release is not None:
            _release(release)
        pytest.fail(f"{getattr(fn, '__name__', fn)} still running after {seconds} s (hang on a non-regular file?)")
    if "error" in result:
        raise result["error"]
    return result["value"]


def _special(tmp_path: Path, kind: str) -> Path:
    """A folder entry that is not a regular file: a FIFO, or a link to a device."""
    path = tmp_path / f"{kind}.dcm"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        target = Path("/dev") / kind
        if not target.exists():
            pytest.skip(f"{target} not present")
        os.symlink(target, path)
    return path


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory):
    """Imports and pydicom's first-use costs, outside the timed scans."""
    folder = tmp_path_factory.mktemp("warm")
    _write_slices(folder, 2)
    scan(str(folder))


@pytest.mark.parametrize("kind", ["fifo", "zero", "urandom"])
def test_scan_skips_what_is_not_a_regular_file_within_a_second(tmp_path, kind):
    slices = _write_slices(tmp_path, 4)
    special = _special(tmp_path, kind)
    index = _within(LIMIT_S, scan, str(tmp_path), release=special if kind == "fifo" else None)
    (skipped,) = index.skipped
    assert skipped.path == str(special)
    expected = "a FIFO (named pipe)" if kind == "fifo" else f"a link to /dev/{kind}: a character device"
    assert expected in skipped.reason and "not a regular file" in skipped.reason
    (entry,) = index.series
    assert entry.n_images == len(slices) and entry.loadable


@pytest.mark.parametrize("kind", ["fifo", "zero", "urandom"])
def test_header_reader_refuses_before_opening(tmp_path, kind):
    special = _special(tmp_path, kind)
    result = _within(LIMIT_S, read_header, str(special), release=special if kind == "fifo" else None)
    assert isinstance(result, Skipped) and "not a regular file" in result.reason


def test_a_socket_and_a_broken_link_are_skipped_with_reasons(tmp_path):
    _write_slices(tmp_path, 2)
    sock_path = tmp_path / "s.sock"
    if len(str(sock_path)) > 100:
        pytest.skip("socket path too long for AF_UNIX")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        os.symlink(tmp_path / "gone.dcm", tmp_path / "dangling.dcm")
        index = _within(LIMIT_S, scan, str(tmp_path))
    reasons = {Path(s.path).name: s.reason for s in index.skipped}
    assert "a socket" in reasons["s.sock"]
    assert "broken link" in reasons["dangling.dcm"]


def test_a_fifo_as_the_path_itself_is_skipped(tmp_path):
    fifo = _special(tmp_path, "fifo")
    index = _within(LIMIT_S, scan, str(fifo), release=fifo)
    assert [s.path for s in index.skipped] == [str(fifo)] and not index.series


def test_a_slice_replaced_by_a_fifo_after_indexing_is_dropped_not_waited_for(tmp_path):
    """The pixel reader checks too: a file swapped for a FIFO between the scan and the load is one dropped slice."""
    slices = _write_slices(tmp_path, 5)
    (entry,) = scan(str(tmp_path)).series
    victim = slices[2]
    victim.unlink()
    os.mkfifo(victim)
    vol = _within(5 * LIMIT_S, load_series, entry, release=victim)
    (warning,) = [w for w in vol.warnings if "dropped" in w]
    assert f"1 slice of 5 dropped ({victim.name}: " in warning and "FIFO" in warning and "a gap at z=4.0 mm" in warning
    assert np.all(vol.array[2] == vol.array[2].flat[0])
    assert np.array_equal(vol.array[3].reshape(-1), np.arange(48) + 300)
    with pytest.raises(PixelDecodeError, match="FIFO"):
        _within(LIMIT_S, read_bytes_into, str(victim), 0, bytearray(16), release=victim)


def test_reads_end_at_the_size_the_file_had_when_opened(tmp_path):
    path = tmp_path / "growing.bin"
    path.write_bytes(b"a" * 100)
    fp = BoundedFile(str(path))
    with open(path, "ab") as more:
        more.write(b"b" * 1000)  # the file grows after it was opened
    assert fp.read(10_000) == b"a" * 100 and fp.read(1) == b""
    fp.seek(50)
    assert fp.read() == b"a" * 50
    fp.seek(5000)
    assert fp.read(10) == b""
    fp.close()
    buf = bytearray(64)
    assert read_bytes_into(str(path), 1080, buf) == 20  # the file's last 20 bytes, no more
    assert read_bytes_into(str(path), 5000, buf) == 0


def test_reason_names_the_link_target_and_the_kind(tmp_path):
    assert not_regular_reason(os.devnull).startswith("a character device")
    assert not_regular_reason(__file__) is None
    assert not_regular_reason(str(tmp_path)).startswith("a folder")
    os.symlink(os.devnull, tmp_path / "null.dcm")
    assert not_regular_reason(str(tmp_path / "null.dcm")).startswith(f"a link to {os.devnull}: a character device")


def test_a_link_to_a_regular_file_is_read(tmp_path):
    source = _write_slices(tmp_path / "src", 3)
    linked = tmp_path / "linked"
    linked.mkdir()
    for p in source:
        os.symlink(p, linked / p.name)
    (entry,) = scan(str(linked)).series
    assert entry.n_images == 3
    shutil.rmtree(tmp_path / "src")
    index = scan(str(linked))
    assert not index.series and all("broken link" in s.reason for s in index.skipped)
