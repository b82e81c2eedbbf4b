"""Property-based fuzzing of the study index and the series loader with truncated and mutated DICOM files.

The contract under test: corrupt input never crashes the viewer, it is *reported*.

1. ``read_header`` on any bytes returns an :class:`ImageFile` or a :class:`Skipped` with a reason; it never raises.
2. ``scan`` of a folder mixing good and broken files never raises; every file ends up in a series entry or in
   ``skipped`` (with a reason); a series that cannot be planned carries a refusal.
3. ``load_series`` of every loadable entry returns a volume of ``entry.shape_zyx`` or raises ``LoadError`` with a
   message; no other exception type escapes.
4. A broken file that is skipped at index time does not take its good neighbours down.

Seeds are small valid files built here with pydicom (a 16×16 CT series in explicit and implicit VR, with and
without the Part 10 preamble, RLE compressed) plus a few real objects from ``../shared/data`` when present.
Mutations are drawn as small plans (seed name + operations) so a failing example prints compactly and replays
with :func:`apply_plan`.

``RADVIEW_FUZZ_EXAMPLES=<n>`` runs ``n`` random (non-derandomized) examples per property for a longer hunt.
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from viewer.io.dicom_header import ImageFile, Skipped, read_header
from viewer.io.dicom_index import scan
from viewer.io.series_loader import LoadError, load_series

#: pydicom warns (rightly) about every oddity of the mutated files, NumPy about overflows in absurd values;
#: the tests look at results, not warnings.
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::RuntimeWarning")]

DATA = Path(os.environ.get("RADVIEW_SHARED_DATA", Path(__file__).resolve().parents[2].parent / "shared" / "data"))

_HUNT = int(os.environ.get("RADVIEW_FUZZ_EXAMPLES", "0"))


def _settings(n: int):
    """Small, reproducible runs by default; ``RADVIEW_FUZZ_EXAMPLES`` switches to a longer random hunt."""
    return settings(
        max_examples=_HUNT or n,
        deadline=None,
        derandomize=not _HUNT,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# --------------------------------------------------------------------------------------------------------------
# seeds
# --------------------------------------------------------------------------------------------------------------

N_SLICES = 4
SIZE = 16
STUDY_UID = "1.2.826.0.1.3680043.8.498.1"
SLICE_MM = 2.5


def _series_uid(variant: str) -> str:
    return f"1.2.826.0.1.3680043.8.498.2.{sum(map(ord, variant))}"


def _sop_uid(variant: str, k: int) -> str:
    return f"{_series_uid(variant)}.{k + 1}"


def expected_slice(k: int) -> np.ndarray:
    """Stored values of slice ``k`` (12-bit unsigned); the loaded HU are these − 1024."""
    return (np.arange(SIZE * SIZE, dtype=np.uint16).reshape(SIZE, SIZE) * 7 + 100 * k) % 4096


def ct_slice(k: int, variant: str, **attrs) -> bytes:
    """Slice ``k`` of a small CT series; ``variant`` is explicit | implicit | bare-implicit | bare-explicit | rle.

    ``attrs`` override attributes (by keyword) after the defaults are set, to build specific broken files."""
    explicit = variant in ("explicit", "bare-explicit", "rle")
    bare = variant.startswith("bare")
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = pydicom.uid.CTImageStorage
    ds.SOPInstanceUID = _sop_uid(variant, k)
    ds.StudyDate = "20240102"
    ds.StudyTime = "101010"
    ds.Modality = "CT"
    ds.Manufacturer = "Fuzz"
    ds.StudyDescription = "fuzz study"
    ds.SeriesDescription = f"fuzz {variant}"
    ds.PatientName = "Fuzz^Test"
    ds.PatientID = "FUZZ1"
    ds.SliceThickness = SLICE_MM
    # a nested sequence of undefined length, so the fast walker has to skip one
    ref = Dataset()
    ref.ReferencedSOPClassUID = pydicom.uid.CTImageStorage
    ref.ReferencedSOPInstanceUID = _sop_uid(variant, (k + 1) % N_SLICES)
    inner = Dataset()
    inner.CodeValue = "123"
    inner.CodingSchemeDesignator = "DCM"
    ref.PurposeOfReferenceCodeSequence = Sequence([inner])
    ds.ReferencedImageSequence = Sequence([ref])
    ds["ReferencedImageSequence"].is_undefined_length = True
    ref.is_undefined_length_sequence_item = True
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = _series_uid(variant)
    ds.SeriesNumber = 1 + sum(map(ord, variant)) % 50
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [-20.0, -20.0, -10.0 + k * SLICE_MM]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = STUDY_UID + ".9"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = SIZE
    ds.Columns = SIZE
    ds.PixelSpacing = [1.25, 1.25]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.PixelData = expected_slice(k).tobytes()
    if not bare:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
        ds.file_meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
        ds.preamble = b"\x00" * 128
    if variant == "rle":
        ds.compress(RLELossless, generate_instance_uid=False)
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    buf = DicomBytesIO()
    pydicom.dcmwrite(buf, ds, implicit_vr=not explicit, little_endian=True, enforce_file_format=not bare)
    return buf.getvalue()


SYNTHETIC = ("explicit", "implicit", "bare-implicit", "bare-explicit", "rle")

#: Real objects from ../shared/data (all optional): classic, multi-frame, compressed, enhanced multi-frame.
REAL = {
    "emri_small": "dicom-objects/emri_small.dcm",
    "emri_small_RLE": "dicom-objects/emri_small_RLE.dcm",
    "JPEG-LL": "dicom-objects/JPEG-LL.dcm",
    "emri_small_jpeg_2k_lossless": "dicom-objects/emri_small_jpeg_2k_lossless.dcm",
    "emri_small_jpeg_ls_lossless": "dicom-objects/emri_small_jpeg_ls_lossless.dcm",
    "eCT_Supplemental": "dicom-objects/eCT_Supplemental.dcm",
    "emri_small_big_endian": "dicom-objects/emri_small_big_endian.dcm",
    "ct-pancreas": "ct-pancreas-tcia/1-050.dcm",
}


@functools.cache
def synthetic_seeds() -> dict[str, bytes]:
    return {f"{v}#{k}": ct_slice(k, v) for v in SYNTHETIC for k in range(N_SLICES)}


@functools.cache
def real_seeds() -> dict[str, bytes]:
    out = {}
    for name, rel in REAL.items():
        p = DATA / rel
        if p.is_file():
            out[name] = p.read_bytes()
    return out


@functools.cache
def all_seeds() -> dict[str, bytes]:
    return {**synthetic_seeds(), **real_seeds()}


def _real_or_skip_path(rel: str) -> Path:
    p = DATA / rel
    if not p.is_file():
        pytest.skip(f"shared test data not found: {p} (real cases come from ../shared/data)")
    return p


def _real_or_skip(name: str) -> bytes:
    seeds = real_seeds()
    if name not in seeds:
        pytest.skip(f"shared test data not found: {DATA / REAL[name]} (real cases come from ../shared/data)")
    return seeds[name]


# --------------------------------------------------------------------------------------------------------------
# mutation plans
# --------------------------------------------------------------------------------------------------------------

_KEYWORDS = (
    "TransferSyntaxUID", "FileMetaInformationGroupLength", "SpecificCharacterSet", "ImageType", "SOPClassUID",
    "SOPInstanceUID", "SeriesInstanceUID", "ReferencedImageSequence", "SliceThickness", "InstanceNumber",
    "ImagePositionPatient", "ImageOrientationPatient", "SamplesPerPixel", "PhotometricInterpretation",
    "PlanarConfiguration", "NumberOfFrames", "Rows", "Columns", "PixelSpacing", "BitsAllocated", "BitsStored",
    "HighBit", "PixelRepresentation", "WindowCenter", "RescaleIntercept", "RescaleSlope",
    "PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "PixelData",
)
TAGS = {kw: tag_for_keyword(kw) for kw in _KEYWORDS}
TAGS.update(Item=0xFFFEE000, ItemDelimiter=0xFFFEE00D, SequenceDelimiter=0xFFFEE0DD)
_LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT"}

#: Replacement values (cut or space-padded to the original value's length), by value representation.
TEXT_VALUES = (b"0", b"-1", b"-16", b"nan", b"inf", b"-inf", b"1e308", b"1e-300", b"99999999", b"3.5", b"",
               b"\\\\", b"1\\0\\0\\1\\0\\0", b"0\\0\\0\\0\\0\\0", b"1\\0\\0\\1\\0\\0\\0", b"abc", b"\xff\xfe",
               b"0\\0\\0", b"-20\\-20\\50", b"0\\0\\1e7", b"0\\0\\1e300", b"0\\0\\nan", b"1\\1", b"0\\0", b"-1\\2")
US_VALUES = (0, 1, 2, 3, 4, 7, 8, 12, 17, 24, 32, 33, 64, 255, 0x8000, 0xFFFF)
UID_VALUES = (b"1.2.840.10008.1.2", b"1.2.840.10008.1.2.1", b"1.2.840.10008.1.2.2", b"1.2.840.10008.1.2.5",
              b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.4.50", b"1.2.840.10008.1.2.4.70", b"9.9")
CS_VALUES = (b"MONOCHROME1", b"RGB", b"YBR_FULL", b"PALETTE COLOR", b"ISO_IR 192", b"ISO 2022 IR 87", b"LOCALIZER")


@dataclass(frozen=True)
class ElementSite:
    """Where one element's header and value sit in a seed."""

    keyword: str
    offset: int
    length_at: int
    length_size: int
    value_at: int
    length: int


@functools.cache
def element_sites(name: str) -> tuple[ElementSite, ...]:
    """Occurrences of the interesting tags in seed ``name`` (some hits inside pixel data are spurious: fine)."""
    buf = all_seeds()[name]
    sites = []
    for kw, tag in TAGS.items():
        needle = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
        start, hits = 0, 0
        while hits < 200:  # per tag: header hits come first; enough for the items of a multi-frame object
            p = buf.find(needle, start)
            if p < 0 or p + 8 > len(buf):
                break
            start = p + 1
            vr = buf[p + 4:p + 6]
            if tag >> 16 == 0xFFFE:
                at, size, value_at = p + 4, 4, p + 8
            elif vr.isalpha() and vr.isupper():
                if vr in _LONG_VRS:
                    at, size, value_at = p + 8, 4, p + 12
                else:
                    at, size, value_at = p + 6, 2, p + 8
            else:
                at, size, value_at = p + 4, 4, p + 8
            if at + size > len(buf):
                continue
            length = int.from_bytes(buf[at:at + size], "little")
            sites.append(ElementSite(kw, p, at, size, value_at, length))
            hits += 1
    return tuple(sites)


@st.composite
def _op(draw, name: str, size: int):
    """One mutation, as a small tuple that :func:`apply_op` replays."""
    sites = element_sites(name)
    kinds = ["truncate", "overwrite", "flip-header", "duplicate", "delete"]
    if sites:
        kinds += ["length", "length", "value", "value"]
    kind = draw(st.sampled_from(kinds))
    pos = st.integers(0, max(size - 1, 0))
    if kind == "truncate":
        return ("truncate", draw(pos))
    if kind == "overwrite":
        return ("overwrite", draw(pos), draw(st.binary(min_size=1, max_size=16)))
    if kind == "flip-header":
        flips = draw(st.lists(st.tuples(st.integers(0, min(size, 2048) - 1), st.integers(1, 255)),
                              min_size=1, max_size=8))
        return ("flip", tuple(flips))
    if kind in ("duplicate", "delete"):
        a = draw(pos)
        n = draw(st.integers(1, 512))
        if kind == "delete":
            return ("delete", a, n)
        return ("duplicate", a, n, draw(pos))
    site = draw(st.sampled_from(sites))
    if kind == "length":
        top = (1 << (8 * site.length_size)) - 1
        new = draw(st.one_of(
            st.sampled_from([0, 1, 2, 3, 4, 8, 0xFF, 0xFFFF, top, top - 1, 0x7FFFFFFF & top]),
            st.integers(0, top),
            st.integers(-8, 8).map(lambda d: (site.length + d) & top),
            st.just((site.length * 2) & top)))
        return ("length", site.keyword, site.length_at, site.length_size, new)
    if site.length == 0 or site.length > 256 or site.value_at + site.length > size:
        return ("length", site.keyword, site.length_at, site.length_size, 0)
    vr = dictionary_VR(TAGS[site.keyword]) if site.keyword in _KEYWORDS else "UL"
    if vr == "US":
        return ("value", site.keyword, site.value_at, struct.pack("<H", draw(st.sampled_from(US_VALUES)))[:site.length])
    choices = UID_VALUES if vr == "UI" else CS_VALUES + TEXT_VALUES if vr == "CS" else TEXT_VALUES
    raw = draw(st.one_of(st.sampled_from(choices), st.binary(max_size=site.length)))
    return ("value", site.keyword, site.value_at, (raw + b" " * site.length)[:site.length])


def apply_op(buf: bytes, op: tuple) -> bytes:
    kind = op[0]
    if kind == "truncate":
        return buf[:op[1]]
    b = bytearray(buf)
    if kind == "overwrite":
        _, at, data = op
        b[at:at + len(data)] = data[: max(len(b) - at, 0)]
    elif kind == "flip":
        for at, mask in op[1]:
            if at < len(b):
                b[at] ^= mask
    elif kind == "delete":
        del b[op[1]:op[1] + op[2]]
    elif kind == "duplicate":
        _, a, n, where = op
        b[where:where] = buf[a:a + n]
    elif kind == "length":
        _, _, at, size, new = op
        if at + size <= len(b):
            b[at:at + size] = new.to_bytes(size, "little")
    elif kind == "value":
        _, _, at, data = op
        if at + len(data) <= len(b):
            b[at:at + len(data)] = data
    return bytes(b)


@dataclass(frozen=True)
class Plan:
    seed: str
    ops: tuple

    def bytes(self) -> bytes:
        return apply_plan(self)


def apply_plan(plan: Plan) -> bytes:
    """Replay a plan (what a failing example prints) on its seed. Ops apply in order to the running buffer;
    positions drawn for the seed are clipped by the shorter buffer where needed."""
    buf = all_seeds()[plan.seed]
    for op in plan.ops:
        buf = apply_op(buf, op)
    return buf


@st.composite
def plans(draw, seeds: tuple[str, ...] | None = None, max_ops: int = 3):
    names = seeds or tuple(sorted(all_seeds()))
    name = draw(st.sampled_from(names))
    size = len(all_seeds()[name])
    ops = draw(st.lists(_op(name, size), min_size=1, max_size=max_ops))
    return Plan(name, tuple(ops))


# --------------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------------

class Hang(BaseException):
    """Raised by the watchdog; a BaseException so no ``except Exception`` in the code under test swallows it."""


@contextlib.contextmanager
def watchdog(seconds: float, what: str):
    """Fail (instead of hanging the run) when the block takes longer than ``seconds``."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def _fire(signum, frame):
        raise Hang(f"{what} took longer than {seconds} s (hang?)")

    old = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@contextlib.contextmanager
def fresh_dir(base: Path):
    d = Path(tempfile.mkdtemp(dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def check_header_result(result, path: str) -> None:
    """Contract 1 (and what the index relies on: an accepted image has at least one frame)."""
    assert isinstance(result, (ImageFile, Skipped)), f"read_header returned {type(result).__name__}"
    if isinstance(result, Skipped):
        assert result.path == path
        assert isinstance(result.reason, str) and result.reason.strip(), "Skipped without a reason"
        return
    assert result.rows >= 1 and result.columns >= 1, (result.rows, result.columns)
    assert result.number_of_frames >= 1, result.number_of_frames
    assert result.samples_per_pixel >= 1, result.samples_per_pixel
    assert len(result.frames) == result.number_of_frames, (len(result.frames), result.number_of_frames)


def check_index(index, files: list[Path]) -> None:
    """Contract 2: every file is accounted for; every refused series says why."""
    in_series = {p for entry in index.series for p in entry.files}
    skipped = {}
    for s in index.skipped:
        assert isinstance(s.reason, str) and s.reason.strip(), f"{s.path} skipped without a reason"
        skipped[s.path] = s.reason
    for f in files:
        assert str(f) in in_series or str(f) in skipped, f"{f.name} is neither in a series nor skipped"
    for entry in index.series:
        assert entry.frames, f"series entry {entry.key} without frames"
        if not entry.loadable:
            assert entry.refusal and entry.refusal.strip(), f"series {entry.key} cannot be loaded but says not why"
        assert all(isinstance(w, str) for w in entry.warnings)


def check_load(entry):
    """Contract 3: a volume of the planned shape, or LoadError with a message. Returns the volume or None.

    A series of 2D images without a common grid (no plan) must open as 2D images instead, or say why not."""
    if entry.planar and entry.plan is None:
        from viewer.io.planar import load_planar

        try:
            with watchdog(30, f"load_planar({entry.key})"):
                series = load_planar(entry)
        except LoadError as exc:
            assert str(exc).strip(), "LoadError without a message"
            return None
        assert series.images and all(r for _p, r in series.skipped)
        return None
    try:
        with watchdog(30, f"load_series({entry.key})"):
            volume = load_series(entry)
    except LoadError as exc:
        assert str(exc).strip(), "LoadError without a message"
        return None
    assert volume.array.shape[:3] == entry.shape_zyx, (volume.array.shape, entry.shape_zyx)
    return volume


# --------------------------------------------------------------------------------------------------------------
# sanity of the seeds themselves
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", SYNTHETIC)
def test_seed_series_loads(workdir, variant):
    d = workdir / f"seed-{variant}"
    d.mkdir()
    for k in range(N_SLICES):
        (d / f"{k:03d}.dcm").write_bytes(ct_slice(k, variant))
    index = scan(str(d))
    assert not index.skipped, index.skipped
    (entry,) = index.series
    assert entry.loadable, entry.refusal
    volume = load_series(entry)
    assert volume.array.shape == (N_SLICES, SIZE, SIZE)
    expected = np.stack([expected_slice(k) for k in range(N_SLICES)]).astype(np.int32) - 1024
    np.testing.assert_array_equal(volume.array, expected)


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_seed_reads(workdir, name):
    path = workdir / f"real-{name}.dcm"
    path.write_bytes(_real_or_skip(name))
    result = read_header(str(path))
    check_header_result(result, str(path))
    assert isinstance(result, ImageFile), result


# --------------------------------------------------------------------------------------------------------------
# 1. read_header never raises
# --------------------------------------------------------------------------------------------------------------

@_settings(1500)
@given(data=st.data())
def test_read_header_on_mutated_files(workdir, data):
    plan = data.draw(plans(), label="plan")
    path = str(workdir / "header.dcm")
    Path(path).write_bytes(plan.bytes())
    with watchdog(10, "read_header"):
        result = read_header(path)
    check_header_result(result, path)


#: Beginnings that steer random bytes into each branch of the readers: Part 10, meta group, bare dataset.
_PREFIXES = (b"", b"\x00" * 128 + b"DICM", b"\x00" * 128 + b"DICM\x02\x00\x10\x00UI", b"\x08\x00",
             b"\x08\x00\x05\x00CS", b"\x02\x00\x00\x00UL\x04\x00")


@_settings(600)
@given(prefix=st.sampled_from(_PREFIXES), body=st.binary(max_size=600))
def test_read_header_on_random_bytes(workdir, prefix, body):
    path = str(workdir / "random.dcm")
    Path(path).write_bytes(prefix + body)
    with watchdog(10, "read_header"):
        result = read_header(path)
    check_header_result(result, path)


# --------------------------------------------------------------------------------------------------------------
# 2 + 3. scan a mixed folder, then load every loadable entry
# --------------------------------------------------------------------------------------------------------------

@_settings(400)
@given(data=st.data())
def test_scan_and_load_mixed_folder(workdir, data):
    good = data.draw(st.sampled_from(SYNTHETIC), label="good series")
    broken = data.draw(st.lists(plans(), min_size=1, max_size=3), label="broken files")
    with fresh_dir(workdir) as d:
        files = []
        for k in range(N_SLICES):
            files.append(d / f"good-{k:03d}.dcm")
            files[-1].write_bytes(ct_slice(k, good))
        for i, plan in enumerate(broken):
            files.append(d / f"broken-{i:03d}.dcm")
            files[-1].write_bytes(plan.bytes())
        with watchdog(30, "scan"):
            index = scan(str(d))
        check_index(index, files)
        for entry in index.series:
            if entry.loadable:
                check_load(entry)


# --------------------------------------------------------------------------------------------------------------
# 4. a broken neighbour skipped at index time does not take the series down
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", SYNTHETIC)
@_settings(60)
@given(data=st.data())
def test_truncated_neighbour_does_not_break_series(workdir, variant, data):
    """N good slices + a truncated copy of another slice (a slice not in the folder, or a duplicate of one that
    is): the truncated file is skipped and the good slices load with their exact values."""
    n_good = N_SLICES - 1
    source = data.draw(st.integers(0, N_SLICES - 1), label="copied slice")  # n_good: the missing one
    raw = ct_slice(source, variant)
    cut = data.draw(st.integers(0, len(raw) - 1), label="truncate at")
    with fresh_dir(workdir) as d:
        files = []
        for k in range(n_good):
            files.append(d / f"{k:03d}.dcm")
            files[-1].write_bytes(ct_slice(k, variant))
        bad = d / ("000-truncated.dcm" if source < n_good else "zzz-truncated.dcm")  # sorts before/after the good
        bad.write_bytes(raw[:cut])
        files.append(bad)
        index = scan(str(d))
        check_index(index, files)
        assert str(bad) in {s.path for s in index.skipped}, f"truncated copy (at {cut} of {len(raw)}) not skipped"
        volumes = [e for e in index.series if e.series_uid == _series_uid(variant)]
        assert len(volumes) == 1, [e.key for e in volumes]
        entry = volumes[0]
        assert entry.loadable, entry.refusal
        assert str(bad) not in entry.files
        volume = check_load(entry)
        assert volume is not None
        expected = np.stack([expected_slice(k) for k in range(n_good)]).astype(np.int32) - 1024
        np.testing.assert_array_equal(volume.array, expected)


def test_real_series_survives_truncated_neighbour(workdir):
    folder = DATA / "ct-pancreas-tcia"
    if not folder.is_dir():
        pytest.skip(f"shared test data not found: {folder} (real cases come from ../shared/data)")
    names = sorted(p.name for p in folder.glob("*.dcm"))[40:44]
    with fresh_dir(workdir) as d:
        for n in names[:3]:
            shutil.copy(folder / n, d / n)
        raw = (folder / names[3]).read_bytes()
        for cut in (100, 1000, len(raw) // 2, len(raw) - 1):
            (d / f"truncated-{cut}.dcm").write_bytes(raw[:cut])
        index = scan(str(d))
        assert {Path(s.path).name for s in index.skipped} == {f"truncated-{c}.dcm" for c in (100, 1000, len(raw) // 2,
                                                                                             len(raw) - 1)}
        (entry,) = index.series
        volume = check_load(entry)
        assert volume is not None and volume.array.shape == (3, 512, 512)


# --------------------------------------------------------------------------------------------------------------
# mutated real objects: header, index and load in one go (one file per folder)
# --------------------------------------------------------------------------------------------------------------

@_settings(400)
@given(data=st.data())
def test_mutated_real_objects_load_or_report(workdir, data):
    names = tuple(sorted(real_seeds()))
    if not names:
        pytest.skip(f"shared test data not found under {DATA} (real cases come from ../shared/data)")
    plan = data.draw(plans(names, max_ops=2), label="plan")
    with fresh_dir(workdir) as d:
        f = d / "object.dcm"
        f.write_bytes(plan.bytes())
        with watchdog(30, "scan"):
            index = scan(str(d))
        check_index(index, [f])
        for entry in index.series:
            if entry.loadable:
                check_load(entry)


# --------------------------------------------------------------------------------------------------------------
# regressions: what the fuzzing found (each was an exception escaping, or a broken file taking a series down)
# --------------------------------------------------------------------------------------------------------------

def _series_folder(base: Path, variant: str, per_slice=lambda k: {}) -> Path:
    d = Path(tempfile.mkdtemp(dir=base))
    for k in range(N_SLICES):
        (d / f"{k:03d}.dcm").write_bytes(ct_slice(k, variant, **per_slice(k)))
    return d


def test_truncated_compressed_file_is_skipped_at_index_time(workdir):
    """A cut anywhere in RLE pixel data used to pass the index (no length to check) and then, as a duplicate
    or an extra slice, take the series down at load time. The fragment walk now skips it with a reason."""
    raw = ct_slice(0, "rle")
    start = raw.rindex(b"\xe0\x7f\x10\x00OB")
    path = workdir / "rle-cut.dcm"
    for cut in range(start, len(raw)):
        path.write_bytes(raw[:cut])
        result = read_header(str(path))
        assert isinstance(result, Skipped), (cut, result)
        if cut >= start + 12:  # (a cut inside the element header leaves no pixel data element at all)
            assert "truncated" in result.reason, (cut, result)
    path.write_bytes(raw)
    assert isinstance(read_header(str(path)), ImageFile)


@pytest.mark.parametrize("attrs", [
    {"RescaleIntercept": "nan"}, {"RescaleIntercept": "inf"}, {"RescaleSlope": "-inf"}, {"RescaleSlope": "nan"},
    {"BitsStored": 0x8000}, {"BitsStored": 0}, {"WindowCenter": "nan"}, {"SliceThickness": "inf"},
], ids=lambda a: "-".join(f"{k}={v}" for k, v in a.items()))
@pytest.mark.parametrize("variant", ["explicit", "rle"])
def test_impossible_values_load_or_report(workdir, variant, attrs):
    """NaN/inf rescale values and a BitsStored above BitsAllocated escaped load_series as ValueError or
    OverflowError (series_loader.output_dtype). Such values are now read as absent."""
    d = _series_folder(workdir, variant, lambda k: attrs if k == 1 else {})
    index = scan(str(d))
    check_index(index, sorted(d.iterdir()))
    for entry in index.series:
        if entry.loadable:
            check_load(entry)


def test_negative_number_of_frames_is_skipped(workdir):
    """NumberOfFrames -3 gave an image with no frames: the file was neither in a series nor skipped."""
    d = _series_folder(workdir, "explicit", lambda k: {"NumberOfFrames": "-3"} if k == 0 else {})
    index = scan(str(d))
    check_index(index, sorted(d.iterdir()))
    assert [Path(s.path).name for s in index.skipped] == ["000.dcm"]
    assert "NumberOfFrames" in index.skipped[0].reason
    (entry,) = index.series
    assert check_load(entry).array.shape == (N_SLICES - 1, SIZE, SIZE)


@pytest.mark.parametrize("iop", [[0, 0, 0, 0, 0, 0], [1, 0, 0, 1, 0, 0], [1e300, 0, 0, 0, 1e300, 0],
                                 [1e-300, 0, 0, 0, 1e-300, 0]], ids=["zero", "parallel", "huge", "tiny"])
def test_degenerate_orientation_never_gives_nan_geometry(workdir, iop):
    """A zero or parallel ImageOrientationPatient gave NaN slice normals: a NaN geometry for a single image
    and a cryptic 'cannot convert float NaN to integer' refusal for a series. It now counts as absent: the
    images open as 2D images with no letters ("orientation not given"), never as a volume."""
    d = _series_folder(workdir, "explicit", lambda k: {"ImageOrientationPatient": iop})
    index = scan(str(d))
    check_index(index, sorted(d.iterdir()))
    (entry,) = index.series
    assert entry.planar and entry.loadable and entry.plan is None
    assert all(im.orientation is None and "orientation not given" in im.warnings for im in entry.images)
    single = _series_folder(workdir, "explicit", lambda k: {"ImageOrientationPatient": iop})
    for f in sorted(single.iterdir())[1:]:
        f.unlink()
    (entry,) = scan(str(single)).series
    volume = check_load(entry)
    assert volume is not None and np.all(np.isfinite(volume.geometry.affine_lps()))


def test_colour_image_with_rescale_loads(workdir):
    """A colour image with a RescaleIntercept: output_dtype keeps uint16 for colour, then the intercept was
    added anyway (OverflowError: -1024 out of bounds for uint16). Rescale applies to grayscale only."""
    d = _series_folder(workdir, "explicit", lambda k: {"SamplesPerPixel": 3, "PlanarConfiguration": 0, "Rows": 8,
                                                       "Columns": 8, "PhotometricInterpretation": "RGB"})
    (entry,) = scan(str(d)).series
    volume = check_load(entry)
    assert volume is not None and volume.array.shape == (N_SLICES, 8, 8, 3)
    # the first 8·8·3 stored values of slice 0, kept as stored (no rescale on colour)
    np.testing.assert_array_equal(volume.array[0].reshape(-1), expected_slice(0).reshape(-1)[:8 * 8 * 3])


@pytest.mark.parametrize("variant", ["explicit", "rle"])
def test_64_bit_integer_pixels_load_or_report(workdir, variant):
    """BitsAllocated 64 with (integer) PixelData passed the index and then stored_dtype raised
    PixelDecodeError outside load_series' LoadError translation."""
    d = _series_folder(workdir, variant, lambda k: {"BitsAllocated": 64, "BitsStored": 64, "HighBit": 63,
                                                    "PixelData": np.arange(256, dtype="<u8").tobytes()}
                       if variant == "explicit" else {"BitsAllocated": 64})
    index = scan(str(d))
    check_index(index, sorted(d.iterdir()))
    for entry in index.series:
        if entry.loadable:
            check_load(entry)


def _nested_sequences(depth: int) -> bytes:
    """A bare explicit-VR dataset whose first element nests ``depth`` undefined-length sequences."""
    sq = struct.pack("<HH", 0x0008, 0x1140) + b"SQ\x00\x00" + b"\xff\xff\xff\xff"
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    item_end = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
    seq_end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return (sq + item) * depth + (item_end + seq_end) * depth


@pytest.mark.parametrize("depth", [10, 5000])
def test_deeply_nested_sequences(workdir, depth):
    """Thousands of nested sequences: the fast walker recursed into a RecursionError, which only read_header's
    catch-all turned into a Skipped; the walker now hands such files to pydicom like any other oddity."""
    path = workdir / f"nested-{depth}.dcm"
    path.write_bytes(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + _nested_sequences(depth)
                     + bytes.fromhex("28001000") + b"US\x02\x00" + b"\x10\x00")
    with watchdog(20, "read_header"):
        result = read_header(str(path))
    check_header_result(result, str(path))


def test_integer_string_infinity(workdir):
    """IS "inf" made the fast walker raise OverflowError (int(float('inf')))."""
    path = workdir / "is-inf.dcm"
    raw = ct_slice(0, "explicit", InstanceNumber="123")
    element = b"\x20\x00\x13\x00IS\x04\x00123 "
    assert raw.count(element) == 1
    path.write_bytes(raw.replace(element, b"\x20\x00\x13\x00IS\x04\x00inf "))
    result = read_header(str(path))
    assert isinstance(result, ImageFile), result


@pytest.mark.parametrize("z", [1e7, 1e300, -1e308])
def test_absurd_slice_position_is_refused(workdir, z):
    """One slice thousands of kilometres away used to make slice_stack list millions of 'missing' slices
    (1e300: a hang at scan time; else load_series failing with MemoryError). The plan must stay bounded."""
    d = _series_folder(workdir, "explicit", lambda k: {"ImagePositionPatient": [-20, -20, z]} if k == 3 else {})
    with watchdog(30, "scan"):
        index = scan(str(d))
    check_index(index, sorted(d.iterdir()))
    for entry in index.series:
        assert not entry.loadable or entry.shape_zyx[0] <= 8 * entry.n_images + 64, entry.shape_zyx


def test_negative_integer_slope_loads(workdir):
    d = _series_folder(workdir, "explicit", lambda k: {"RescaleSlope": -1})
    (entry,) = scan(str(d)).series
    volume = check_load(entry)
    expected = -np.stack([expected_slice(k) for k in range(N_SLICES)]).astype(np.int32) - 1024
    np.testing.assert_array_equal(volume.array, expected)


def test_corrupt_jpeg2000_does_not_abort_the_process(workdir):
    """One flipped byte in a JPEG 2000 frame: pydicom tried GDCM first (python-gdcm installed), whose C++
    exception aborted the whole process ("terminate called after throwing ..."). pixel_reader now leaves GDCM
    out where another decoder exists. Runs in a subprocess, since the failure mode kills the interpreter."""
    raw = bytearray(_real_or_skip_path("dicom-objects/emri_small_jpeg_2k_lossless.dcm").read_bytes())
    raw[21576] ^= 178  # inside frame 6's codestream
    folder = workdir / "j2k-flip"
    folder.mkdir()
    (folder / "frame-flip.dcm").write_bytes(bytes(raw))
    code = (
        "import sys, warnings; warnings.simplefilter('ignore')\n"
        "from viewer.io.dicom_index import scan\n"
        "from viewer.io.series_loader import LoadError, load_series\n"
        "(entry,) = scan(sys.argv[1]).series\n"
        "try:\n"
        "    print('loaded', load_series(entry, workers=1).array.shape)\n"
        "except LoadError as exc:\n"
        "    print('LoadError', exc)\n")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(("loaded", "LoadError")), proc.stdout
