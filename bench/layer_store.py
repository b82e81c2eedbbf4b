"""Benchmark: the layer store's gzip NRRD (viewer/store/layer_store.py) against SimpleITK and pynrrd.

Usage::

    python bench/layer_store.py [--repeats N] [--shape Z,Y,X] [--methods radview,sitk,sitk-l1,pynrrd,pynrrd-l1]

The data: a 300×512×512 uint8 label map (75 MiB) with four labels (nested ellipsoids, a box), on an oblique,
anisotropic grid whose numbers a float32 would not keep. Every method writes and reads the same gzip NRRD file
kind the store keeps, the way the store would have to use it:

    radview     write: ``write_nrrd_atomic`` (temporary file, header, the array streamed through zlib in 4 MB
                chunks at level 1, the CRC-32 computed on the way, fsync, rename, folder fsync);
                read: ``read_nrrd`` (inflated in chunks straight into the returned array)
    sitk        write: ``sitk.GetImageFromArray`` (a copy), spacing/origin/direction set, ``zlib.crc32`` of the
                array (the manifest's checksum), ``sitk.WriteImage(img, tmp, useCompression=True,
                imageIO="NrrdImageIO")`` inside the same ``atomic_path`` (fsync, rename);
                read: ``sitk.ReadImage`` + ``GetArrayViewFromImage`` + a copy (the store hands out a writable
                array that outlives the image). ``sitk``: ITK's default compression level; ``sitk-l1``: level 1
    pynrrd      (skipped when it is not installed: not a radview dependency, ``pip install pynrrd``)
                write: ``nrrd.write(tmp, array, header, index_order="C", compression_level=…)`` in ``atomic_path``
                plus ``zlib.crc32``; read: ``nrrd.read(path, index_order="C")``. ``pynrrd``: its default
                level (9); ``pynrrd-l1``: level 1

Each method runs in a child process of its own (so one's memory does not hide in another's). There it is timed
as the median of ``--repeats`` writes and reads (after one untimed warm-up of each). Peak memory is the peak
resident set size above the resident size just before the call (``/proc/self/clear_refs`` resets the peak;
tracemalloc would miss ITK's C++ allocations), for the first write and the first read. "GIL stall" is the
largest gap of a thread that sleeps 5 ms in a loop while the write or read runs in another thread (median of
``--repeats``): the time the GUI thread of the app could not run Python while the autosave writer works.
Every file each method writes is read back by ``read_nrrd`` and by the method itself and compared (voxels and
geometry to 1e-9 mm); the radview file is read by every library (the old files must stay readable).

Prints each figure and its ratio to the radview figure measured in the same run, with ``os.getloadavg()``.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("radview", "sitk", "sitk-l1", "pynrrd", "pynrrd-l1")
_A = 0.3


def make_geometry(shape):
    from radview_base.geometry import Geometry

    return Geometry(tuple(shape), (1.2500000001, 0.7031249999, 0.71), (-123.456789012345, 1 / 3, 2 / 7),
                    ((math.cos(_A), -math.sin(_A), 0.0), (math.sin(_A), math.cos(_A), 0.0), (0.0, 0.0, 1.0)))


def make_labels(shape) -> np.ndarray:
    """Nested ellipsoids (labels 1-3) and a small box (4), built slice by slice (no volume-sized temporaries)."""
    z, y, x = shape
    yy, xx = np.ogrid[:y, :x]
    out = np.zeros(shape, np.uint8)
    for k in range(z):
        out[k][((k - z / 2) / (0.4 * z)) ** 2 + ((yy - y / 2) / (0.4 * y)) ** 2
               + ((xx - x / 2) / (0.43 * x)) ** 2 < 1] = 1
        for cx, label in ((0.3, 2), (0.7, 3)):
            out[k][((k - 0.45 * z) / (0.2 * z)) ** 2 + ((yy - 0.4 * y) / (0.16 * y)) ** 2
                   + ((xx - cx * x) / (0.12 * x)) ** 2 < 1] = label
    out[z // 3:z // 3 + 10, y // 2:y // 2 + 12, x // 2:x // 2 + 9] = 4
    return out


# --- memory and GIL probes (child process) -----------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_mib(fn):
    """(fn's result, peak RSS above the RSS before the call in MiB)."""
    import gc

    gc.collect()
    _reset_peak()
    before = _status_kb("VmRSS")
    result = fn()
    return result, (_status_kb("VmHWM") - before) / 1024


def gil_stall_ms(fn) -> float:
    """Largest gap (ms) of a thread ticking every 5 ms while ``fn`` runs in another thread."""
    done = threading.Event()
    box = {}

    def work():
        try:
            box["out"] = fn()
        finally:
            done.set()

    worker = threading.Thread(target=work)
    last, gap = time.perf_counter(), 0.0
    worker.start()
    while not done.is_set():
        time.sleep(0.005)
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    worker.join()
    return gap * 1000


# --- the methods -------------------------------------------------------------------------------------------------
def _sitk_level(method: str) -> int:
    return 1 if method.endswith("-l1") else -1


def write_fn(method: str, path: Path, array: np.ndarray, geometry):
    from radview_base.atomic_file import atomic_path

    if method == "radview":
        from viewer.store.layer_store import write_nrrd_atomic

        return lambda: write_nrrd_atomic(path, array, geometry)
    if method.startswith("sitk"):
        import SimpleITK as sitk

        def write():
            img = sitk.GetImageFromArray(array)
            img.SetSpacing(tuple(float(v) for v in geometry.spacing_xyz))
            img.SetOrigin(tuple(float(v) for v in geometry.origin_lps))
            img.SetDirection(tuple(float(v) for v in geometry.direction_matrix.reshape(-1)))
            crc = zlib.crc32(array)
            with atomic_path(path, mode=0o600) as tmp:
                sitk.WriteImage(img, tmp, useCompression=True, compressionLevel=_sitk_level(method),
                                imageIO="NrrdImageIO")
            return crc
        return write
    if method.startswith("pynrrd"):
        import nrrd

        header = {"type": "uint8", "dimension": 3, "space": "left-posterior-superior",
                  "space directions": np.asarray(geometry.axes_lps, float), "kinds": ["domain"] * 3,
                  "endian": "little", "encoding": "gzip", "space origin": np.asarray(geometry.origin_lps, float)}
        level = 1 if method.endswith("-l1") else 9

        def write():
            crc = zlib.crc32(array)
            with atomic_path(path, mode=0o600) as tmp:
                nrrd.write(tmp, array, dict(header), index_order="C", compression_level=level)
            return crc
        return write
    raise SystemExit(f"unknown method {method}")


def read_fn(method: str, path: Path):
    from radview_base.geometry import Geometry

    if method == "radview":
        from viewer.store.layer_store import read_nrrd

        return lambda: read_nrrd(path)
    if method.startswith("sitk"):
        import SimpleITK as sitk

        from viewer.io.image_io import geometry_from_sitk

        def read():
            img = sitk.ReadImage(str(path), imageIO="NrrdImageIO")
            return np.array(sitk.GetArrayViewFromImage(img)), geometry_from_sitk(img)
        return read
    if method.startswith("pynrrd"):
        import nrrd

        def read():
            data, header = nrrd.read(str(path), index_order="C")
            affine = np.eye(4)
            affine[:3, :3] = np.asarray(header["space directions"], float).T
            affine[:3, 3] = header["space origin"]
            return data, Geometry.from_affine_lps(affine, data.shape)
        return read
    raise SystemExit(f"unknown method {method}")


def child(method: str, shape, repeats: int, folder: Path, reference: Path | None) -> dict:
    from viewer.store.layer_store import read_nrrd

    geometry, array = make_geometry(shape), make_labels(shape)
    path = folder / f"{method}.nrrd"
    write, read = write_fn(method, path, array, geometry), read_fn(method, path)
    crc, write_peak = peak_mib(write)
    assert crc == zlib.crc32(array)
    (back, geom), read_peak = peak_mib(read)
    del back
    write_s, read_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        write()
        write_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        back = read()
        read_s.append(time.perf_counter() - t0)
        del back
    write_stall = statistics.median(gil_stall_ms(write) for _ in range(repeats))
    read_stall = statistics.median(gil_stall_ms(read) for _ in range(repeats))
    checks = []
    for name, (got, got_geom) in (("itself", read()), ("read_nrrd", read_nrrd(path))):
        ok = np.array_equal(got, array) and got.flags.writeable and got_geom.max_corner_distance(geometry) < 1e-9
        checks.append(f"{name} {'ok' if ok else 'DIFFERS'}")
    if reference is not None and method != "radview":  # the store's old files must stay readable
        got, got_geom = read_fn(method, reference)()
        ok = np.array_equal(got, array) and got_geom.max_corner_distance(geometry) < 1e-9
        checks.append(f"reads radview's file {'ok' if ok else 'DIFFERS'}")
    return {"method": method, "write_ms": statistics.median(write_s) * 1000,
            "read_ms": statistics.median(read_s) * 1000, "write_peak_mib": write_peak, "read_peak_mib": read_peak,
            "write_stall_ms": write_stall, "read_stall_ms": read_stall, "file_mib": path.stat().st_size / 2 ** 20,
            "checks": ", ".join(checks)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shape", default="300,512,512")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--reference", help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    if args.child:
        reference = Path(args.reference) if args.reference else None
        out = child(args.child, shape, args.repeats, Path(args.folder), reference)
        print("RESULT " + json.dumps(out))
        return 0

    methods = [m for m in args.methods.split(",") if m]
    if "radview" not in methods:
        methods.insert(0, "radview")
    print(f"layer store NRRD, {shape[0]}x{shape[1]}x{shape[2]} uint8 ({np.prod(shape) / 2 ** 20:.0f} MiB), "
          f"4 labels, gzip; median of {args.repeats}; {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())} (other work on the machine makes timings noisy)")
    results = []
    with tempfile.TemporaryDirectory(prefix="radview-bench-nrrd-") as tmp:
        reference = Path(tmp) / "radview.nrrd"
        for method in methods:
            if method.startswith("pynrrd") and importlib.util.find_spec("nrrd") is None:
                print(f"  {method}: skipped, pynrrd is not installed (not a radview dependency: pip install pynrrd)")
                continue
            cmd = [sys.executable, __file__, "--child", method, "--folder", tmp, "--shape", args.shape,
                   "--repeats", str(args.repeats)]
            if method != "radview":
                cmd += ["--reference", str(reference)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                print(f"  {method}: failed ({proc.returncode})\n{proc.stderr[-2000:]}")
                continue
            results.append(json.loads(line[len("RESULT "):]))
    base = next((r for r in results if r["method"] == "radview"), None)
    if base is None:
        return 1
    cols = (("write_ms", "write ms"), ("read_ms", "read ms"), ("write_peak_mib", "write peak MiB"),
            ("read_peak_mib", "read peak MiB"), ("write_stall_ms", "write GIL stall ms"),
            ("read_stall_ms", "read GIL stall ms"), ("file_mib", "file MiB"))
    print("\n(time, GIL stall, file size: the figure and its ratio to radview's; peak memory: MiB above the resident "
          "size before the call, and the difference to radview's; a read's peak includes the returned array)")
    print(f"{'method':10s}" + "".join(f"{title:>22s}" for _, title in cols))
    for r in results:
        cells = []
        for key, _ in cols:
            if "peak" in key:  # memory: the difference (radview's write peak is near 0: a ratio says nothing)
                cells.append(f"{r[key]:7.1f} ({r[key] - base[key]:+6.1f})")
            else:
                cells.append(f"{r[key]:9.1f} ({r[key] / base[key] if base[key] > 0 else float('nan'):5.2f}x)")
        print(f"{r['method']:10s}" + "".join(f"{c:>22s}" for c in cells))
    print("\nround trips:")
    for r in results:
        print(f"  {r['method']:10s} {r['checks']}")
    print(f"\nload average after: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
