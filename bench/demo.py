"""Benchmark: how long the built-in demo study takes to generate.

Usage::

    python bench/demo.py [--repeats N] [--seed S] [--keep DIR]

Times (median of N runs, each into a fresh temporary directory)
    phantom      viewer.demo.phantom.make_phantom (rasterising, blur, noise)
    DICOM        viewer.demo.dicom_writer.write_study (thin + slab + localizer files)
    total        viewer.demo.generate_demo end to end (phantom + DICOM + truth files)

The budget is 20 s for ``total`` on 2 CPU cores (target 10 s).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from viewer.demo import DEFAULT_SEED, generate_demo  # noqa: E402
from viewer.demo.dicom_writer import write_study  # noqa: E402
from viewer.demo.phantom import make_phantom  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--keep", type=Path, help="also leave one generated study in this directory")
    args = ap.parse_args(argv)

    rows = {"phantom": [], "DICOM": [], "total": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="radview-demo-bench-") as tmp:
            start = time.perf_counter()
            phantom = make_phantom(args.seed)
            rows["phantom"].append(time.perf_counter() - start)
            start = time.perf_counter()
            write_study(Path(tmp) / "parts" / "dicom", phantom.hu_zyx, phantom.grid, args.seed)
            rows["DICOM"].append(time.perf_counter() - start)
            phantom = None  # free the volume before the end-to-end run
            start = time.perf_counter()
            generate_demo(Path(tmp) / "study", seed=args.seed)
            rows["total"].append(time.perf_counter() - start)
    if args.keep:
        generate_demo(args.keep, seed=args.seed)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"radview demo generation, seed {args.seed}, {args.repeats} run(s), {cores} CPU core(s)")
    for name, values in rows.items():
        extra = f"  (min {min(values):.2f} s, max {max(values):.2f} s)" if len(values) > 1 else ""
        print(f"  {name:<8} {statistics.median(values):6.2f} s{extra}")
    total = statistics.median(rows["total"])
    print(f"  budget   20 s on 2 cores (target 10 s): {'OK' if total < 20 else 'OVER BUDGET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
