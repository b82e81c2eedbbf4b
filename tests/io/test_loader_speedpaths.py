"""The loader's fast path for native pixel data: straight reads into the output, several threads.

Native frames are read with one ``preadv`` into their output slice and rescaled there
(``series_loader._read_native_fast``), on more than one thread (``_run_parallel``). These tests check that this
gives exactly what the general per-frame path (``_read_rescaled``) and pydicom give, whatever the worker count,
for the pixel encodings it takes (signed/unsigned, BitsStored < BitsAllocated with garbage high bits, big endian,
8-bit, multi-frame) and the ones it hands on (slopes, int32 fallback); and that cancel, progress, ``on_slice``,
read errors and out-of-memory behave as before.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from reference import DATA

from viewer.io import pixel_reader, series_loader
from viewer.io.dicom_index import Cancelled, scan
from viewer.io.series_loader import LoadError, load_series

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ROWS, COLS = 12, 10


def _write_series(folder: Path, stored: np.ndarray, *, bits_stored: int, signed: bool, intercept=-1024, slope=1,
                  syntax=ExplicitVRLittleEndian, bits_allocated: int = 16) -> Path:
    """One file per slice of ``stored`` (z, rows, cols): the raw stored words, high bits included."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = pydicom.uid.generate_uid()
    for k, plane in enumerate(stored):
        ds = Dataset()
        ds.SOPClassUID = pydicom.uid.CTImageStorage
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.Modality = "CT"
        ds.PatientName = "Speed^Paths"
        ds.PatientID = "SPEED"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.77"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 2.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.77.1"
        ds.PixelSpacing = [0.5, 0.5]
        ds.SliceThickness = 2.0
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = plane.shape
        ds.BitsAllocated = bits_allocated
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = int(signed)
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = slope
        big = syntax == ExplicitVRBigEndian
        word = np.dtype(f"{'>' if big else '<'}{'i' if signed else 'u'}{bits_allocated // 8}")
        ds.PixelData = plane.astype(word).tobytes()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = syntax
        ds.preamble = b"\x00" * 128
        pydicom.dcmwrite(folder / f"s{k:03d}.dcm", ds, implicit_vr=syntax == ImplicitVRLittleEndian,
                         little_endian=not big, enforce_file_format=True)
    return folder


def _expected(stored: np.ndarray, bits_stored: int, signed: bool, slope, intercept, bits_allocated=16) -> np.ndarray:
    """Modality values from first principles: the BitsStored low bits (sign-extended if signed) × slope + intercept."""
    words = stored.astype(np.int64) & ((1 << bits_allocated) - 1)
    values = words & ((1 << bits_stored) - 1)
    if signed:
        values = np.where(values >= 1 << (bits_stored - 1), values - (1 << bits_stored), values)
    return values * slope + intercept


def _entry(folder: Path):
    (entry,) = [s for s in scan(str(folder)).series if s.loadable]
    return entry


def _general_path_only(monkeypatch):
    """Route every frame through the general per-frame path (``_read_rescaled``), as before the fast path."""
    monkeypatch.setattr(series_loader, "_native_recipes", lambda jobs, dtype, scaling: [None] * len(jobs))


def _rng_stack(seed, n, lo, hi, dtype=np.int64):
    return np.random.default_rng(seed).integers(lo, hi, size=(n, ROWS, COLS), endpoint=True).astype(dtype)


CASES = {
    # name: (stored words, bits_stored, signed, slope, intercept, expected dtype, syntax, bits_allocated)
    "signed16-ge": (_rng_stack(1, 9, -1000, 3000), 16, True, 1, -1024, np.int16, ExplicitVRLittleEndian, 16),
    "unsigned12-garbage-high-bits": (_rng_stack(2, 9, 0, 65535), 12, False, 1, -1024, np.int16,
                                     ImplicitVRLittleEndian, 16),
    "unsigned12-clean": (_rng_stack(3, 9, 0, 4095), 12, False, 1, -1000, np.int16, ExplicitVRLittleEndian, 16),
    "signed12-garbage-high-bits": (_rng_stack(4, 9, 0, 65535), 12, True, 1, 0, np.int16, ExplicitVRLittleEndian, 16),
    "signed12-big-endian": (_rng_stack(5, 9, 0, 65535), 12, True, 1, -1024, np.int16, ExplicitVRBigEndian, 16),
    "unsigned16-big-endian": (_rng_stack(6, 9, 0, 65535), 16, False, 1, 0, np.uint16, ExplicitVRBigEndian, 16),
    "unsigned16-intercept": (_rng_stack(7, 9, 0, 60000), 16, False, 1, -1024, np.int32, ExplicitVRLittleEndian, 16),
    "unsigned8": (_rng_stack(8, 9, 0, 255), 8, False, 1, 0, np.uint8, ExplicitVRLittleEndian, 8),
    "unsigned8-intercept": (_rng_stack(9, 9, 0, 255), 8, False, 1, -100, np.int16, ExplicitVRLittleEndian, 8),
    "slope2": (_rng_stack(10, 9, 0, 4095), 12, False, 2, -1024, np.int16, ExplicitVRLittleEndian, 16),
    "fractional-slope": (_rng_stack(11, 9, 0, 4095), 12, False, 0.5, -1024, np.float32, ExplicitVRLittleEndian, 16),
    "signed16-huge-intercept": (_rng_stack(13, 9, -1000, 3000), 16, True, 1, 100000, np.int32, ExplicitVRLittleEndian,
                                16),
    "unsigned12-big-intercept": (_rng_stack(14, 9, 0, 4095), 12, False, 1, 40000, np.uint16, ExplicitVRLittleEndian,
                                 16),
    "signed16-int32-fallback": (np.concatenate([_rng_stack(12, 8, -1000, 3000), np.full((1, ROWS, COLS), -32768)]),
                                16, True, 1, -1024, np.int32, ExplicitVRLittleEndian, 16),
}


#: the cases the fast path must leave to the general one
GENERAL_ONLY = {"unsigned8-intercept", "slope2", "fractional-slope", "signed16-huge-intercept"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_worker_count_and_the_general_path_agree_with_first_principles(name, tmp_path, monkeypatch):
    stored, bs, signed, slope, intercept, dtype, syntax, ba = CASES[name]
    folder = _write_series(tmp_path / name, stored, bits_stored=bs, signed=signed, intercept=intercept, slope=slope,
                           syntax=syntax, bits_allocated=ba)
    entry = _entry(folder)
    expected = _expected(stored, bs, signed, slope, intercept, ba)
    fast_calls = []
    real_fast = series_loader._read_native_fast
    monkeypatch.setattr(series_loader, "_read_native_fast", lambda *a: fast_calls.append(1) or real_fast(*a))
    results = {w: load_series(entry, workers=w).array for w in (1, 2, 3, 16)}
    # the fast path takes slope 1 with an output as wide as the stored words (int32 output: its int16 attempt)
    assert bool(fast_calls) == (name not in GENERAL_ONLY)
    with monkeypatch.context() as m:
        _general_path_only(m)
        results["general"] = load_series(entry, workers=1).array
    for how, arr in results.items():
        assert arr.dtype == dtype, (how, arr.dtype)
        np.testing.assert_array_equal(arr.astype(np.float64), expected, err_msg=f"{name}, workers={how}")
    ref = np.stack([pydicom.dcmread(p).pixel_array for p in sorted(folder.iterdir())]).astype(np.float64)
    np.testing.assert_array_equal(results[2].astype(np.float64), ref * slope + intercept)


def test_multiframe_and_big_endian_objects_agree_with_the_general_path(monkeypatch):
    folder = DATA / "dicom-objects"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    checked = 0
    for path in sorted(folder.iterdir()):
        if path.suffix != ".dcm":
            continue
        for entry in scan(str(path)).series:
            if not entry.loadable or not all(fr.file.is_native for fr in entry.frames):
                continue
            fast = {w: load_series(entry, timepoint=None, workers=w).meta["timepoints"] for w in (1, 4)}
            with monkeypatch.context() as m:
                _general_path_only(m)
                general = load_series(entry, timepoint=None, workers=1).meta["timepoints"]
            for w, arr in fast.items():
                assert arr.dtype == general.dtype and np.array_equal(arr, general), (path.name, w)
            checked += 1
    assert checked >= 10


@pytest.fixture
def ct_series(tmp_path):
    stored = _rng_stack(20, 40, 0, 4095)
    return stored, _entry(_write_series(tmp_path / "ct", stored, bits_stored=12, signed=False))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_progress_counts_in_order_and_on_slice_sees_each_finished_slice(ct_series, workers):
    stored, entry = ct_series
    calls, seen, lock = [], {}, threading.Lock()

    def on_slice(z, img):
        with lock:
            seen[z] = img.copy()

    vol = load_series(entry, workers=workers, progress=lambda d, t: calls.append((d, t)), on_slice=on_slice)
    assert calls == [(k + 1, len(stored)) for k in range(len(stored))]
    assert sorted(seen) == list(range(len(stored)))
    for z, img in seen.items():
        np.testing.assert_array_equal(img, vol.array[z])
    np.testing.assert_array_equal(vol.array, _expected(stored, 12, False, 1, -1024))


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_cancel_stops_every_worker(ct_series, workers):
    _, entry = ct_series
    cancel = threading.Event()
    calls = []

    def progress(done, total):
        calls.append(done)
        if done == 5:
            cancel.set()

    before = threading.active_count()
    with pytest.raises(Cancelled):
        load_series(entry, workers=workers, progress=progress, cancel=cancel)
    assert len(calls) <= 5 + workers - 1  # each worker finishes at most the slice it had started
    assert threading.active_count() == before


@pytest.mark.parametrize("workers", [1, 2])
def test_truncated_file_is_dropped_with_its_reason_and_the_others_load(ct_series, workers, tmp_path):
    """(Issue 15, part 4: a slice whose pixels cannot be read is dropped with its reason, the series still opens;
    it used to fail the whole load.)"""
    stored, entry = ct_series
    victim = entry.frames[3].file.path
    with open(victim, "r+b") as fp:
        fp.truncate(os.path.getsize(victim) - 7)
    before = threading.active_count()
    vol = load_series(entry, workers=workers)
    assert threading.active_count() == before
    (warning,) = [w for w in vol.warnings if "dropped" in w]
    assert f"1 slice of {len(stored)} dropped ({Path(victim).name}: pixel data truncated" in warning
    assert "a gap at z=6.0 mm" in warning
    z = int(round(vol.geometry.world_to_index(entry.frames[3].position)[0]))
    assert np.all(vol.array[z] == vol.array[z].flat[0])  # shown empty, not invented
    others = [k for k in range(len(stored)) if k != z]
    np.testing.assert_array_equal(vol.array[others], stored[others] - 1024)


def test_every_slice_unreadable_is_a_load_error(ct_series):
    _, entry = ct_series
    for fr in entry.frames:
        with open(fr.file.path, "r+b") as fp:
            fp.truncate(os.path.getsize(fr.file.path) - 7)
    with pytest.raises(LoadError, match="no slice of this series could be read .*truncated"):
        load_series(entry, workers=2)


def test_out_of_memory_is_a_load_error(ct_series, monkeypatch):
    _, entry = ct_series

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(series_loader.np, "empty", no_memory)
    with pytest.raises(LoadError, match="not enough memory"):
        load_series(entry, workers=2)


def test_overflow_in_a_later_slice_falls_back_to_int32_with_several_workers(tmp_path):
    stored = _rng_stack(30, 32, -1000, 3000)
    stored[27, 3, 4] = -32768  # only this voxel needs int32 (−32768 − 1024)
    entry = _entry(_write_series(tmp_path / "ovf", stored, bits_stored=16, signed=True))
    for workers in (1, 2, 4):
        arr = load_series(entry, workers=workers).array
        assert arr.dtype == np.int32
        np.testing.assert_array_equal(arr, stored - 1024)


@pytest.mark.parametrize("n,workers", [(1, 2), (2, 2), (7, 3), (40, 2), (41, 4), (5, 8)])
def test_run_parallel_calls_every_index_once(n, workers):
    seen, lock = [], threading.Lock()

    def body(i):
        with lock:
            seen.append(i)

    series_loader._run_parallel(n, body, workers, None)
    assert sorted(seen) == list(range(n))


def test_run_parallel_raises_the_first_error_and_stops():
    calls, lock = [], threading.Lock()

    def body(i):
        with lock:
            calls.append(i)
        if i == 3:
            raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        series_loader._run_parallel(1000, body, 2, None)
    assert len(calls) < 1000


def test_read_bytes_into_handles_short_reads_and_the_portable_fallback(tmp_path, monkeypatch):
    path = tmp_path / "blob"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    out = np.zeros(1000, dtype=np.uint8)
    assert pixel_reader.read_bytes_into(str(path), 123, out) == 1000
    assert out.tobytes() == data[123:1123]

    real = os.preadv

    def short(fd, buffers, offset):  # at most 64 bytes per call, as a signal-interrupted read could give
        (buf,) = buffers
        view = memoryview(buf).cast("B")
        return real(fd, [view[:64]], offset)

    monkeypatch.setattr(pixel_reader.os, "preadv", short)
    out[:] = 0
    assert pixel_reader.read_bytes_into(str(path), 7, out, 1000) == 1000
    assert out.tobytes() == data[7:1007]
    # at the end of the file: fewer bytes, no error (the caller reports the truncation)
    assert pixel_reader.read_bytes_into(str(path), len(data) - 10, out) == 10
    monkeypatch.undo()

    monkeypatch.setattr(pixel_reader, "_HAVE_PREADV", False)
    out[:] = 0
    assert pixel_reader.read_bytes_into(str(path), 500, out.reshape(10, 100)) == 1000
    assert out.tobytes() == data[500:1500]
