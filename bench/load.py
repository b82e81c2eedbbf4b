"""Benchmark: how fast radview turns a folder of DICOM slices into a numpy volume.

Usage::

    python bench/load.py [--repeats N] [--quick] [--case pancreas|synthetic|ct1500|all]

Cases
    pancreas   ../shared/data/ct-pancreas-tcia (134 real CT slices, 512×512, implicit VR);
               skipped with a note when the folder is absent.
    synthetic  a generated 512×512×300 CT series (explicit VR little endian, one file per
               slice, GE-like header by default: PixelRepresentation 1, BitsStored 16,
               RescaleIntercept -1024; file names shuffled). It is generated once into
               ``--cache-dir`` (outside any timing) and reused while its marker file matches.
    ct1500     the same kind of series, 1,500 slices of 512×512 (a 750 MiB int16 volume), generated
               once into ``--cache-dir``. Measured against dcm2niix (when installed): radview's in-app
               index+load, ``radview-cli convert`` to NIfTI and ``dcm2niix -z n`` as whole processes
               (wall time, median of N), and the peak resident memory (VmHWM) of convert and of dcm2niix as
               a multiple of the volume (target for convert: ≤ 1.15 × volume + 150 MB), with the machine's
               load average before and after. The two NIfTI files are checked to hold the same voxels.

Methods (each timed as the median of N repeats, after one untimed warm-up call; the page
cache is warmed first by reading every file of the folder once)
    I/O floor                  read every slice file's bytes into one preallocated buffer
                               (reused, so it stays in the CPU cache: the lowest bound)
    I/O floor, new volume      read every slice's pixel bytes (untimed-located offsets) into a
                               newly allocated (z, y, x) array: adds the page faults and memory
                               traffic any loader pays to fill a fresh volume, no rescale
    I/O floor, N threads       (for information) the I/O floor split over as many threads as
                               radview's loader uses for native data (each thread its own reused
                               buffer); shown because the loader is multi-threaded and the two floors
                               above are single-threaded
    pydicom read+stack         pydicom.dcmread every file, sort by ImagePositionPatient
                               projected on the slice normal, stack pixel_array into a
                               preallocated int16 array with the rescale applied
    SimpleITK                  GetGDCMSeriesFileNames + ImageSeriesReader (int16 output)
                               + GetArrayFromImage
    radview index              viewer.io.dicom_index.scan(folder) (also as files/s)
    radview load (indexed)     viewer.io.series_loader.load_series(index.largest_volume())
    radview index+load         both, end to end

The target "load ≤ 2× I/O floor" is judged against the strict, single-threaded I/O floor (first row),
and the script says whether it is met; the other floors are printed to show where the rest of the time
goes (a fresh volume's page faults) and what the same number of threads gives.

Outside the timings the script checks that radview's array equals the pydicom and
SimpleITK arrays (SimpleITK's z axis is flipped first if its slice direction is opposite
to radview's), and measures with tracemalloc (which sees numpy's allocations) the peak
memory allocated during load_series, as a multiple of the output volume's nbytes.
"""
from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pydicom
import SimpleITK as sitk

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH_DIR))

from _synthetic import ensure_ct_series  # noqa: E402

from viewer.io.dicom_index import scan  # noqa: E402
from viewer.io.series_loader import default_workers, load_series  # noqa: E402

PANCREAS = REPO.parent / "shared/data/ct-pancreas-tcia"
DEFAULT_CACHE = Path("/tmp/radview-bench")
MB = 2 ** 20

# targets
E2E_VS_SITK = 0.5  # index+load ≤ 0.5× SimpleITK
LOAD_VS_IO = 2.0  # load ≤ 2× I/O floor
INDEX_FILES_PER_S = 2000
PEAK_FACTOR = 1.3  # peak extra memory ≤ 1.3× volume + fixed overhead
PEAK_OVERHEAD_MB = 16


@dataclass
class Case:
    name: str
    folder: Path
    note: str = ""


# --- the methods ------------------------------------------------------------------------------

def dicom_files(folder: Path) -> list[str]:
    """Part 10 DICOM files (DICM magic) in ``folder``, hidden files excluded, sorted by name."""
    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        with open(p, "rb") as fp:
            if fp.read(132)[128:132] == b"DICM":
                found.append(str(p))
    return found


def warm_page_cache(folder: Path) -> None:
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb") as fp:
                while fp.read(1 << 22):
                    pass


def io_floor(paths: list[str], buf: bytearray) -> int:
    """Read every file's bytes into ``buf`` (as large as the largest file); the bytes read."""
    view = memoryview(buf)
    total = 0
    for p in paths:
        with open(p, "rb", buffering=0) as fp:
            total += fp.readinto(view)
    return total


def io_floor_threads(paths: list[str], bufs: list[bytearray]) -> int:
    """``io_floor`` over ``len(bufs)`` threads, each reading a contiguous share of ``paths`` into its own buffer."""
    n = len(bufs)
    shares = [paths[len(paths) * w // n:len(paths) * (w + 1) // n] for w in range(n)]
    totals = [0] * n

    def run(w: int) -> None:
        totals[w] = io_floor(shares[w], bufs[w])

    threads = [threading.Thread(target=run, args=(w,)) for w in range(1, n)]
    for t in threads:
        t.start()
    run(0)
    for t in threads:
        t.join()
    return sum(totals)


def thp_mode() -> str:
    """The kernel's transparent huge page mode and whether numpy asks for huge pages for large arrays."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
        mode = text[text.index("[") + 1:text.index("]")]
    except (OSError, ValueError):
        mode = "unknown"
    try:
        from numpy._core.multiarray import _get_madvise_hugepage
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _get_madvise_hugepage
    return f"THP {mode}, numpy madvise(MADV_HUGEPAGE) {'on' if _get_madvise_hugepage() else 'off'}"


def pixel_offsets(paths: list[str], nbytes: int) -> list[int]:
    """Byte offset of each single-frame native file's pixel values (the last element, ``nbytes`` long)."""
    offsets = []
    for p in paths:
        offset = os.path.getsize(p) - nbytes
        with open(p, "rb") as fp:
            fp.seek(offset - 12)
            head = fp.read(12)
        length_ok = int.from_bytes(head[8:12], "little") == nbytes
        if not (length_ok and (head[4:8] == b"\xe0\x7f\x10\x00" or head[0:4] == b"\xe0\x7f\x10\x00")):
            raise ValueError(f"{p}: pixel data is not the last element")
        offsets.append(offset)
    return offsets


def io_floor_new_volume(paths: list[str], offsets: list[int], shape: tuple[int, int, int]) -> np.ndarray:
    """Read each file's pixel bytes into its own slice of a new int16 array (no sort, no rescale)."""
    out = np.empty(shape, dtype=np.int16)
    for k, (p, offset) in enumerate(zip(paths, offsets)):
        with open(p, "rb", buffering=0) as fp:
            fp.seek(offset)
            fp.readinto(memoryview(out[k]).cast("B"))
    return out


def pydicom_stack(paths: list[str]) -> np.ndarray:
    """The straightforward pydicom loader: read all, sort along the normal, stack, rescale."""
    datasets = [pydicom.dcmread(p) for p in paths]
    iop = np.asarray(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=float), normal)))
    first = datasets[0]
    out = np.empty((len(datasets), first.Rows, first.Columns), dtype=np.int16)
    for k, ds in enumerate(datasets):
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        pixels = ds.pixel_array
        if slope == int(slope) and intercept == int(intercept):
            np.multiply(pixels, int(slope), out=out[k], casting="unsafe")
            out[k] += np.int16(intercept)
        else:
            out[k] = np.rint(pixels * slope + intercept)
    return out


def sitk_read(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    reader.SetOutputPixelType(sitk.sitkInt16)
    return reader.Execute()


def sitk_array(folder: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk_read(folder))


def radview_end_to_end(folder: Path):
    return load_series(scan(str(folder)).largest_volume())


# --- measuring ---------------------------------------------------------------------------------

def _cpu_busy_s() -> float | None:
    """CPU seconds all processes have used since boot (Linux ``/proc/stat``: user, nice, system, irq, softirq)."""
    try:
        with open("/proc/stat") as fp:
            f = [int(x) for x in fp.readline().split()[1:8]]
        return (f[0] + f[1] + f[2] + f[5] + f[6]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


#: label → share of the machine's CPU time that *other* processes used while the method was timed
OTHERS: dict[str, float] = {}


def median_time(fn: Callable[[], object], repeats: int, label: str | None = None) -> float:
    """Median wall time (s) of ``repeats`` calls, after one untimed warm-up call.

    With ``label``, also records in ``OTHERS`` how busy the rest of the machine was meanwhile (Linux only)."""
    fn()
    times = []
    busy0, own0, wall0 = _cpu_busy_s(), sum(os.times()[:2]), time.perf_counter()
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    busy1, own1, wall1 = _cpu_busy_s(), sum(os.times()[:2]), time.perf_counter()
    if label and busy0 is not None and busy1 is not None:
        OTHERS[label] = max(0.0, (busy1 - busy0) - (own1 - own0)) / ((wall1 - wall0) * (os.cpu_count() or 1))
    return statistics.median(times)


def peak_extra_during_load(entry) -> tuple[int, object]:
    """Peak bytes allocated (tracemalloc) during one load_series call, above the level before it."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        volume = load_series(entry)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return peak, volume


def compare_arrays(radview: np.ndarray, reference: np.ndarray, what: str) -> str | None:
    """None when equal, else a description of the difference."""
    if radview.shape != reference.shape:
        return f"radview {radview.shape} vs {what} {reference.shape}"
    if np.array_equal(radview, reference):
        return None
    diff = np.abs(radview.astype(np.int64) - reference.astype(np.int64))
    return f"radview vs {what}: {np.count_nonzero(diff)} voxels differ, max |diff| {diff.max()}"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


# --- the 1,500-slice case: radview against dcm2niix -------------------------------------------------

CT1500_SLICES = 1500
CONVERT_PEAK_FACTOR = 1.15  # convert's peak resident memory ≤ 1.15 × volume + 150 MB
CONVERT_PEAK_OVERHEAD_MB = 150

#: runs radview-cli in a fresh interpreter and reports that process's own peak resident memory (VmHWM; a child's
#: ru_maxrss would carry this benchmark's high-water mark into it across the vfork + exec)
_CLI_WITH_PEAK = """
import sys
sys.argv = ["radview-cli"] + sys.argv[1:]
from viewer.cli.main import main
try:
    status = main()
finally:
    with open("/proc/self/status") as fp:
        sys.stderr.write("PEAK_KIB " + next(ln for ln in fp if ln.startswith("VmHWM:")).split()[1] + "\\n")
sys.exit(status)
"""

#: runs any command as its grandchild from a small fresh interpreter, whose wait4 gives the command's own peak
#: (the fresh interpreter's high-water mark, a few MB, is all it can inherit)
_CHILD_PEAK = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
_, status, usage = os.wait4(proc.pid, 0)
err = proc.stderr.read().decode(errors="replace")
sys.stderr.write(err[-2000:] + "\\nPEAK_KIB %d\\n" % usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_with_peak(args: list[str]) -> tuple[float, int]:
    """(wall seconds, peak resident bytes) of one whole process; raises when it fails."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])}… failed ({proc.returncode}): {proc.stderr[-1000:]}")
    kib = [line.split()[1] for line in proc.stderr.splitlines() if line.startswith("PEAK_KIB ")]
    return wall, int(kib[-1]) * 1024


def same_voxels(ours: Path, theirs: Path) -> str:
    """Whether two NIfTI files hold the same voxels once both are oriented LPS (dcm2niix flips rows)."""
    a = sitk.DICOMOrient(sitk.ReadImage(str(ours)), "LPS")
    b = sitk.DICOMOrient(sitk.ReadImage(str(theirs)), "LPS")
    va, vb = sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)
    if va.shape != vb.shape:
        return f"no: shapes {va.shape} vs {vb.shape}"
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), atol=0.01):
        return f"voxels {'equal' if np.array_equal(va, vb) else 'differ'}, origins {a.GetOrigin()} vs {b.GetOrigin()}"
    return "yes" if np.array_equal(va, vb) else f"no: {np.count_nonzero(va != vb)} voxels differ"


def run_ct1500(folder: Path, repeats: int) -> None:
    load_before = os.getloadavg()
    warm_page_cache(folder)
    index = scan(str(folder))
    entry = index.largest_volume()
    nz, ny, nx = entry.shape_zyx
    volume_bytes = nz * ny * nx * 2
    print(f"case: synthetic-ct1500 ({index.n_files} files, {nx}x{ny}, {volume_bytes / MB:.0f} MiB int16 volume); "
          f"load average {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} (1 / 5 / 15 min) before")

    t_app = median_time(lambda: radview_end_to_end(folder), repeats, "in-app")
    gc.collect()
    dcm2niix = shutil.which("dcm2niix")
    with tempfile.TemporaryDirectory(prefix="radview-bench-") as tmp:
        ours = Path(tmp) / "radview.nii"
        convert = [sys.executable, "-c", _CLI_WITH_PEAK, "convert", str(folder), "--out", str(ours)]
        runs = [run_with_peak(convert) for _ in range(repeats)]
        t_convert = statistics.median(r[0] for r in runs)
        peak_convert = max(r[1] for r in runs)
        theirs_dir = Path(tmp) / "dcm2niix"
        theirs_dir.mkdir()
        rows = [("radview index+load (in-app)", t_app), ("radview-cli convert → .nii (process)", t_convert)]
        peak_theirs = agree = None
        if dcm2niix:
            cmd = [sys.executable, "-c", _CHILD_PEAK, dcm2niix, "-z", "n", "-b", "n", "-f", "dcm2niix",
                   "-o", str(theirs_dir), str(folder)]
            theirs = [run_with_peak(cmd) for _ in range(repeats)]
            t_theirs = statistics.median(r[0] for r in theirs)
            peak_theirs = max(r[1] for r in theirs)
            rows.append(("dcm2niix -z n (process)", t_theirs))
            written = sorted(theirs_dir.glob("*.nii"))
            agree = same_voxels(ours, written[0]) if written else "dcm2niix wrote no .nii"
    print(f"{'method':<40}{'median s':>10}{'vs dcm2niix':>13}")
    for label, t in rows:
        ratio = f"{t / rows[-1][1]:.2f}×" if dcm2niix else "—"
        print(f"{label:<40}{t:>10.2f}{ratio:>13}")
    if not dcm2niix:
        print("dcm2niix baseline missing: dcm2niix is not installed (e.g. apt-get install dcm2niix)")
    limit = CONVERT_PEAK_FACTOR * volume_bytes + CONVERT_PEAK_OVERHEAD_MB * MB
    print(f"peak resident memory: radview-cli convert {peak_convert / MB:.0f} MiB = "
          f"{peak_convert / volume_bytes:.2f} × volume"
          + (f"; dcm2niix {peak_theirs / MB:.0f} MiB = {peak_theirs / volume_bytes:.2f} × volume" if peak_theirs
             else ""))
    if agree is not None:
        print(f"same voxels as dcm2niix (both oriented LPS): {agree}")
    load_after = os.getloadavg()
    print(f"load average {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after "
          f"({os.cpu_count()} CPUs; other work on the machine slows every timing)")
    print(f"targets: convert peak ≤ {CONVERT_PEAK_FACTOR}× volume + {CONVERT_PEAK_OVERHEAD_MB} MB "
          f"({limit / MB:.0f} MiB): {verdict(peak_convert <= limit)}")
    print()


def run_case(case: Case, repeats: int) -> None:
    paths = dicom_files(case.folder)
    if not paths:
        print(f"case: {case.name}: no DICOM files in {case.folder}, skipped\n")
        return
    warm_page_cache(case.folder)

    # Untimed: index once, load once, read the references, and check they agree.
    index = scan(str(case.folder))
    entry = index.largest_volume()
    peak, volume = peak_extra_during_load(entry)
    arr = volume.array
    reference = pydicom_stack(paths)
    image = sitk_read(case.folder)
    sitk_arr = sitk.GetArrayFromImage(image)
    sitk_z = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
    radview_z = np.asarray(volume.geometry.direction, dtype=float)[:, 2]
    flipped = float(sitk_z @ radview_z) < 0
    if flipped:
        sitk_arr = sitk_arr[::-1]
    problems = [p for p in (compare_arrays(arr, reference, "pydicom"), compare_arrays(arr, sitk_arr, "SimpleITK")) if p]
    del reference, sitk_arr, image

    nz, ny, nx = arr.shape[:3]
    int16_mb = nz * ny * nx * 2 / MB
    print(f"case: {case.name} ({len(paths)} files, {nx}x{ny}, {int16_mb:.0f} MB){case.note}")
    if index.n_files != len(paths):
        print(f"  (the folder holds {index.n_files} files; radview's index reads all of them)")

    buf = bytearray(max(os.path.getsize(p) for p in paths))
    t_io = median_time(lambda: io_floor(paths, buf), repeats, "floor")
    offsets = pixel_offsets(paths, ny * nx * 2)
    t_io_new = median_time(lambda: io_floor_new_volume(paths, offsets, (len(paths), ny, nx)), repeats, "floor new")
    n_threads = default_workers(len(entry.frames), native=True)
    bufs = [bytearray(len(buf)) for _ in range(n_threads)]
    t_io_threads = median_time(lambda: io_floor_threads(paths, bufs), repeats, "floor threads")
    t_pydicom = median_time(lambda: pydicom_stack(paths), repeats)
    t_sitk = median_time(lambda: sitk_array(case.folder), repeats)
    t_index = median_time(lambda: scan(str(case.folder)), repeats)
    t_load = median_time(lambda: load_series(entry), repeats, "load")
    t_e2e = median_time(lambda: radview_end_to_end(case.folder), repeats)
    files_per_s = index.n_files / t_index

    rows = [
        ("I/O floor (read bytes)", t_io),
        ("I/O floor, new volume", t_io_new),
        (f"I/O floor, {n_threads} threads (info)", t_io_threads),
        ("pydicom read+stack", t_pydicom),
        ("SimpleITK ImageSeriesReader", t_sitk),
        (f"radview index ({files_per_s:,.0f} files/s)", t_index),
        ("radview load (indexed)", t_load),
        ("radview index+load", t_e2e),
    ]
    print(f"{'method':<34}{'median ms':>10}{'ratio vs SimpleITK':>21}{'ratio vs I/O floor':>21}")
    for label, t in rows:
        print(f"{label:<34}{t * 1e3:>10.1f}{t / t_sitk:>21.2f}{t / t_io:>21.2f}")

    print(f"arrays equal: {'yes' if not problems else 'no'} (radview vs pydicom and SimpleITK"
          f"{', SimpleITK z flipped' if flipped else ''})")
    for p in problems:
        print(f"  {p}")
    ratio = peak / arr.nbytes
    int16_note = "" if arr.dtype == np.int16 else f"; {peak / (nz * ny * nx * 2):.2f} × the int16 volume"
    print(f"peak extra memory during load: {peak / MB:.1f} MB = {ratio:.2f} × volume "
          f"({arr.nbytes / MB:.0f} MB, dtype {arr.dtype}{int16_note})")

    load_ratio = t_load / t_io
    print(f"load vs strict I/O floor: {load_ratio:.2f}× (target ≤ {LOAD_VS_IO:g}×: "
          f"{'met' if load_ratio <= LOAD_VS_IO else 'NOT met'}); vs the new-volume floor {t_load / t_io_new:.2f}×, "
          f"vs the {n_threads}-thread floor {t_load / t_io_threads:.2f}× (radview loads native data on "
          f"{n_threads} thread{'s' if n_threads > 1 else ''})")
    if OTHERS:
        busy = ", ".join(f"{OTHERS[k]:.0%} during the {k} timing"
                         for k in ("floor", "floor new", "load") if k in OTHERS)
        print(f"  other processes used {busy} (share of all {os.cpu_count()} CPUs; with a core taken by other work "
              f"the loader's second thread has no core of its own, while the single-threaded floors do not need one)")

    peak_ok = peak <= PEAK_FACTOR * arr.nbytes + PEAK_OVERHEAD_MB * MB
    print("targets: "
          f"index+load ≤ {E2E_VS_SITK}× SimpleITK: {verdict(t_e2e <= E2E_VS_SITK * t_sitk)}; "
          f"load ≤ {LOAD_VS_IO:g}× I/O floor: {verdict(t_load <= LOAD_VS_IO * t_io)}; "
          f"index ≥ {INDEX_FILES_PER_S} files/s: {verdict(files_per_s >= INDEX_FILES_PER_S)}; "
          f"peak ≤ {PEAK_FACTOR}× + {PEAK_OVERHEAD_MB} MB: {verdict(peak_ok)}; "
          f"dtype int16: {verdict(arr.dtype == np.int16)}; "
          f"arrays equal: {verdict(not problems)}")
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per method (default 7, --quick 3)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--case", choices=("pancreas", "synthetic", "ct1500", "all"), default="all")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the synthetic series is kept")
    parser.add_argument("--synthetic-pr", type=int, choices=(0, 1), default=1,
                        help="synthetic PixelRepresentation: 1 = signed, BitsStored 16 (GE-like, default); "
                             "0 = unsigned, BitsStored 12 (Siemens/Philips-like)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 7)

    print(f"radview load benchmark: {repeats} timed repeats per method (median), warm page cache")
    print(f"python {platform.python_version()}, numpy {np.__version__}, pydicom {pydicom.__version__}, "
          f"SimpleITK {sitk.Version.VersionString()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} (other work on the machine makes timings noisy); {thp_mode()}\n")

    cases = []
    if args.case in ("pancreas", "all"):
        if PANCREAS.is_dir():
            cases.append(Case("ct-pancreas-tcia", PANCREAS))
        else:
            print(f"case: ct-pancreas-tcia skipped: {PANCREAS} not found\n")
    if args.case in ("synthetic", "all"):
        folder = args.cache_dir / f"ct300-pr{args.synthetic_pr}"
        t0 = time.perf_counter()
        folder, generated = ensure_ct_series(folder, pixel_representation=args.synthetic_pr)
        if generated:
            print(f"(generated {folder} in {time.perf_counter() - t0:.1f} s)\n")
        bits = "signed, BitsStored 16" if args.synthetic_pr else "unsigned, BitsStored 12"
        cases.append(Case("synthetic-ct300", folder,
                          f"; explicit VR, PixelRepresentation {args.synthetic_pr} ({bits})"))

    for case in cases:
        run_case(case, repeats)
    if args.case in ("ct1500", "all"):
        t0 = time.perf_counter()
        folder, generated = ensure_ct_series(args.cache_dir / "ct1500-pr1", nz=CT1500_SLICES)
        if generated:
            print(f"(generated {folder} in {time.perf_counter() - t0:.1f} s)\n")
        run_ct1500(folder, min(repeats, 3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
