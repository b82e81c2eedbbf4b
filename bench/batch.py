"""Batch throughput and per-series overhead of ``radview-cli batch run``.

    python bench/batch.py [--model ct-lungs] [--series 8] [--every 2] [--skip-ray] [--skip-300] [--repeat-300 N]
                          [--keep DIR]

1. Throughput: the same ``--series`` CTs (copies of the real CT of ../shared/data/ct-pancreas-tcia, each its own
   study and series, 512 x 512, every ``--every``-th slice: 67 slices by default, to fit this 2-core machine's
   time) run through ``batch run`` three times into fresh output folders: the local engine with 1 worker
   (all CPUs) and with 2 workers, and Ray with 2 actors on a single-node cluster started here beforehand
   (127.0.0.1 only, stopped by its process group). Series per minute are over the command's own wall time
   (planning, starting the workers or connecting to Ray, running, writing; not Ray's cluster start).
   Target: Ray <= 1.10 x the local engine's wall time at equal workers.
2. Overhead: the fixed per-series cost beyond the model's own time (``seconds - model_run`` of each job: hashing
   the input, reading the headers again, loading, writing labels, SEG, SR, findings and thumbnail), from the
   throughput runs and from one 512 x 512 x 300 CT (the real CT resampled along z). Target: <= 10 % of the model
   time for ct-lungs on the 300-slice CT. ``--repeat-300 N``: N copies of it (each its own series) through the one
   worker, the figures their medians (the first job's overhead said as well): steadier on a busy machine.

The load average is printed with every figure: on a shared machine other work slows everything down.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PANCREAS = ROOT.parent / "shared" / "data" / "ct-pancreas-tcia"
BIN = Path(sys.executable).parent


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


# --- inputs ---------------------------------------------------------------------------------------------------
def _datasets():
    import pydicom

    files = sorted(PANCREAS.glob("*.dcm"))
    if not files:
        sys.exit(f"bench/batch.py needs the real CT in {PANCREAS}")
    return [pydicom.dcmread(p) for p in files]


def _save(ds, folder: Path, i: int, study: str, series: str, frame: str, description: str) -> None:
    from pydicom.uid import generate_uid

    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = description
    ds.InstanceNumber = i + 1
    ds.save_as(folder / f"IM{i:04d}.dcm", enforce_file_format=True)


def make_copies(dst: Path, n: int, every: int) -> None:
    from pydicom.uid import generate_uid

    sources = _datasets()[::every]
    for c in range(n):
        folder = dst / f"ct{c:02d}"
        folder.mkdir(parents=True)
        uids = generate_uid(), generate_uid(), generate_uid()
        for i, ds in enumerate(sources):
            ds = ds.copy()
            ds.SliceThickness = float(ds.SliceThickness) * every
            _save(ds, folder, i, *uids, f"bench copy {c}")


def make_ct300(dst: Path, n: int = 300, copies: int = 1) -> None:
    """The real CT resampled along z (linear) to ``n`` slices spanning the same extent; ``copies`` > 1: that many
    series of it (the same pixels, their own UIDs), each in a folder of its own under ``dst``."""
    from pydicom.uid import generate_uid

    sources = sorted(_datasets(), key=lambda d: float(d.ImagePositionPatient[2]))
    z = np.array([float(d.ImagePositionPatient[2]) for d in sources])
    stack = np.stack([d.pixel_array for d in sources]).astype(np.float32)
    targets = np.linspace(z[0], z[-1], n)
    spacing = float(targets[1] - targets[0])
    for c in range(copies):
        folder = dst if copies == 1 else dst / f"copy{c:02d}"
        folder.mkdir(parents=True)
        uids = generate_uid(), generate_uid(), generate_uid()
        for i, t in enumerate(targets):
            k = min(int(np.searchsorted(z, t, side="right")) - 1, len(z) - 2)
            w = (t - z[k]) / (z[k + 1] - z[k])
            ds = sources[k].copy()
            pixels = (1 - w) * stack[k] + w * stack[k + 1]
            ds.PixelData = np.rint(pixels).astype(sources[k].pixel_array.dtype).tobytes()
            ds.ImagePositionPatient = [float(ds.ImagePositionPatient[0]), float(ds.ImagePositionPatient[1]),
                                       float(t)]
            ds.SliceLocation = float(t)
            ds.SliceThickness = abs(spacing)
            _save(ds, folder, i, *uids, "bench 300 slices")


# --- running ----------------------------------------------------------------------------------------------------
def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), RAY_USAGE_STATS_ENABLED="0")


def batch(inputs: list[Path], out: Path, model: str, *extra: str, environ=None) -> dict:
    command = [sys.executable, "-m", "viewer.cli.main", "batch", "run", *map(str, inputs), "--model", model,
               "--out", str(out), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=environ or env(), timeout=3600)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"batch failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    m = re.search(r"(\d+) run now in ([\d.]+) s", done.stdout)
    jobs = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    jobs = [j for j in jobs if j.get("kind") == "job" and j.get("status") == "ok"]
    return {"ran": int(m.group(1)), "wall_s": float(m.group(2)), "process_s": wall, "jobs": jobs}


def overhead(jobs: list[dict]) -> tuple[float, float, dict]:
    """Median model time, median overhead (job seconds - model time) and the median of each step."""
    model = [j["timings"]["model_run"] for j in jobs]
    over = [j["row"]["seconds"] - j["timings"]["model_run"] for j in jobs]
    steps = {k: statistics.median(j["timings"].get(k, 0.0) for j in jobs)
             for k in ("index", "load", "wait_prefetch", "write", "count", "prefetch_thread")}
    steps["peak_rss_mb"] = max(j.get("peak_rss_mb", 0.0) for j in jobs)
    return statistics.median(model), statistics.median(over), steps


def _steps(steps: dict) -> str:
    return " + ".join(f"{k} {steps[k]:.2f}" for k in ("index", "load", "wait_prefetch", "write", "count")) + " s"


class RayHead:
    """A single-node Ray cluster on 127.0.0.1 only (clusters switched off: loopback binds), in its own process
    group, which :meth:`stop` kills."""

    def __init__(self, cpus: int, temp: Path):
        self.port = 6390
        self.temp = temp
        self.env = dict(env(), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", RAY_TMPDIR=str(temp), RAY_AUTH_MODE="token",
                        RAY_AUTH_TOKEN=secrets.token_hex(32))
        temp.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address", "127.0.0.1", "--port",
             str(self.port), "--num-cpus", str(cpus), "--include-dashboard", "false", "--temp-dir", str(temp),
             "--disable-usage-stats"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=self.env,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = subprocess.run([str(BIN / "ray"), "status", "--address", self.address], capture_output=True,
                                    text=True, env=self.env)
            if status.returncode == 0 and "CPU" in status.stdout:
                return
            time.sleep(1)
        self.stop()
        sys.exit("the Ray head did not start")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="ct-lungs")
    ap.add_argument("--series", type=int, default=8)
    ap.add_argument("--every", type=int, default=2, help="keep every N-th slice of the real CT in the copies")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-300", action="store_true", help="skip the 300-slice overhead run")
    ap.add_argument("--skip-throughput", action="store_true", help="only the 300-slice overhead run")
    ap.add_argument("--repeat-300", type=int, default=1, metavar="N",
                    help="run N copies of the 300-slice CT through the one worker; report medians")
    ap.add_argument("--keep", help="build the inputs here and keep them (default: a temporary folder)")
    args = ap.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="rv-bench-", dir="/tmp"))
    try:
        if not (work / "copies").is_dir():
            make_copies(work / "copies", args.series, args.every)
        ct300 = work / ("ct300" if args.repeat_300 <= 1 else f"ct300x{args.repeat_300}")
        if not args.skip_300 and not ct300.is_dir():
            make_ct300(ct300, copies=max(1, args.repeat_300))
        n_slices = len(list((work / "copies" / "ct00").glob("*.dcm")))
        print(f"radview batch benchmark: {args.model} on {args.series} CTs of 512 x 512 x {n_slices} "
              f"(the real CT, every {args.every}. slice), {os.cpu_count()} CPUs; {load()}")
        results = {}
        runs = () if args.skip_throughput else (("local, 1 worker", ["--workers", "1"]),
                                                 ("local, 2 workers", ["--workers", "2"]))
        for name, extra in runs:
            shutil.rmtree(work / "out", ignore_errors=True)
            results[name] = batch([work / "copies"], work / "out", args.model, *extra)
            r = results[name]
            print(f"  {name:18s} {r['wall_s']:6.1f} s  {60 * r['ran'] / r['wall_s']:5.2f} series/min  ({load()})")
        if not args.skip_ray and not args.skip_throughput:
            head = RayHead(2, Path(tempfile.mkdtemp(prefix="rv-ray-", dir="/tmp")))
            try:
                shutil.rmtree(work / "out", ignore_errors=True)
                r = results["ray, 2 actors"] = batch([work / "copies"], work / "out", args.model, "--engine", "ray",
                                                     "--address", head.address, "--workers", "2", environ=head.env)
                print(f"  {'ray, 2 actors':18s} {r['wall_s']:6.1f} s  {60 * r['ran'] / r['wall_s']:5.2f} series/min  "
                      f"({load()})")
            finally:
                head.stop()
                shutil.rmtree(head.temp, ignore_errors=True)
            ratio = results["ray, 2 actors"]["wall_s"] / results["local, 2 workers"]["wall_s"]
            print(f"  Ray / local wall time at 2 workers: {ratio:.2f} (target <= 1.10): {verdict(ratio <= 1.10)}")
        for name, r in results.items():
            model, over, steps = overhead(r["jobs"])
            print(f"  per series, {name:18s}: model {model:5.2f} s, overhead {over:4.2f} s "
                  f"({100 * over / model:4.1f} %) = {_steps(steps)} (medians); peak memory per worker "
                  f"{steps['peak_rss_mb']:.0f} MB")
        if not args.skip_300:
            shutil.rmtree(work / "out", ignore_errors=True)
            r = batch([ct300], work / "out", args.model, "--workers", "1")
            model, over, steps = overhead(r["jobs"])
            ok = over <= 0.10 * model
            n = len(r["jobs"])
            job = statistics.median(j["row"]["seconds"] for j in r["jobs"])
            what = "1 worker" if n == 1 else f"1 worker, {n} series (medians)"
            print(f"  512 x 512 x 300 CT, {what}: job {job:.2f} s, model {model:.2f} s, "
                  f"overhead {over:.2f} s = {100 * over / model:.1f} % of the model time (target <= 10 %): "
                  f"{verdict(ok)}")
            names = [k for k in r["jobs"][0]["timings"] if k.startswith("write_")]
            parts = ", ".join(f"{k[6:]} {statistics.median(j['timings'].get(k, 0.0) for j in r['jobs']):.2f}"
                              for k in names)
            first = r["jobs"][0]
            first_over = first["row"]["seconds"] - first["timings"]["model_run"]
            print(f"    {_steps(steps)}; write = {parts} s; hash and SEG/SR headers read "
                  f"beside the model in {steps['prefetch_thread']:.2f} s; peak memory of the worker "
                  f"{steps['peak_rss_mb']:.0f} MB" + (f"; the worker's first job: overhead {first_over:.2f} s = "
                                                       f"{100 * first_over / first['timings']['model_run']:.1f} %"
                                                       if n > 1 else "") + f"; {load()}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
