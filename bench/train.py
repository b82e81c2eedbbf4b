"""``radview-cli ai train`` end to end: phantoms of some seeds in, a model folder out, Dice on phantoms of other seeds.

    python bench/train.py [--minutes 14] [--device cpu|cuda] [--train-seeds 8] [--test-seeds 3] [--keep DIR]

Issue 20's target: training on 8 phantoms of other seeds for at most 15 minutes on 2 CPU cores gives a model
whose ``lung_left`` and ``lung_right`` reach Dice >= 0.90 on phantoms of seeds it never saw, measured through
``radview-cli ai run --model-dir`` and ``radview-cli ai eval`` (the commands a user runs, as child processes).

The phantoms are the demo's chest (``viewer.demo.phantom.make_phantom``; each seed varies body size and position,
lung shape, nodules) on a coarse grid: 80 x 128 x 128 voxels of 4 x 3 x 3 mm (the demo's field of view), written
as NIfTI cases (image, truth/labels.nii.gz, truth/labels.json). Training runs at 6 mm voxels (the model grid of its
``model.toml``; the patch of 48 x 64 x 64 then spans the whole field of view in-plane, so every patch shows both
lungs and the mediastinum between them: left and right are told apart from the first hundred steps); inference
resamples to it and back, and ``ai eval`` compares on the 4 x 3 x 3 mm grid (resampling the truth to 6 mm and
back alone caps the lungs' Dice near 0.96).

Printed: the load average (other work on a shared 2-core machine slows everything), the training's samples/s
(patches of 48 x 64 x 64 per second of training steps), the time to a validation Dice of 0.9 on both lungs
(model grid, the run's own validation phantoms), the wall time of the whole ``ai train`` command, and per unseen
phantom the Dice of both lungs, with the ratios to the targets side by side.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (80, 128, 128)
SPACING = (4.0, 3.0, 3.0)
LUNGS = ("lung_left", "lung_right")
TARGET_DICE = 0.90
TARGET_MINUTES = 15.0
TRAIN_OPTIONS = ["--labels", ",".join(LUNGS), "--spacing", "6", "--patch", "48,64,64", "--features",
                 "8,16,32,64,128", "--batch-size", "2", "--steps-per-epoch", "25", "--patience", "10"]


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def write_case(folder: Path, seed: int) -> Path:
    import SimpleITK as sitk

    from viewer.demo.phantom import LABELS, make_phantom

    p = make_phantom(seed, shape_zyx=SHAPE, spacing_zyx=SPACING)
    (folder / "truth").mkdir(parents=True, exist_ok=True)
    for array, path in ((p.hu_zyx, folder / "image.nii.gz"), (p.labels_zyx, folder / "truth" / "labels.nii.gz")):
        img = sitk.GetImageFromArray(array)
        img.SetSpacing(tuple(float(v) for v in p.grid.spacing_zyx[::-1]))
        img.SetOrigin(tuple(float(v) for v in p.grid.origin_lps))
        sitk.WriteImage(img, str(path), True)
    (folder / "truth" / "labels.json").write_text(json.dumps({str(k): v for k, v in LABELS.items()}))
    return folder


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def time_to_dice(history: dict, target: float) -> tuple[float, int] | None:
    for record in history.get("validation", []):
        if all(record["dice"].get(n, 0.0) >= target for n in LUNGS):
            return record["elapsed_s"], record["step"]
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=14.0, help="training budget (default 14: data and writing "
                                                                  "fit in the 15 minutes)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--train-seeds", type=int, default=8)
    ap.add_argument("--test-seeds", type=int, default=3)
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary folder)")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="radview-bench-train-"))
    data, tests, model = work / "data", work / "unseen", work / "model"
    print(f"bench/train.py: {os.cpu_count()} CPUs, device {args.device}; {load()}")
    t0 = time.perf_counter()
    train_seeds = [1000 + i for i in range(args.train_seeds)]
    test_seeds = [2000 + i for i in range(args.test_seeds)]
    for s in train_seeds:
        write_case(data / f"phantom-{s}", s)
    for s in test_seeds:
        write_case(tests / f"phantom-{s}", s)
    print(f"phantoms: {len(train_seeds)} for training (seeds {train_seeds[0]}..{train_seeds[-1]}), "
          f"{len(test_seeds)} unseen (seeds {test_seeds[0]}..{test_seeds[-1]}), {' x '.join(map(str, SHAPE))} voxels "
          f"of {' x '.join(f'{v:g}' for v in SPACING)} mm, written in {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    done = cli("ai", "train", "--data", str(data), "--out", str(model), "--minutes", f"{args.minutes:g}",
               "--device", args.device, "--restart", *TRAIN_OPTIONS)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stderr)
        return 1
    record = json.loads((model / "report" / "training.json").read_text())
    reached = time_to_dice(record["history"], TARGET_DICE)
    print(f"\nai train: {wall / 60:.1f} min wall ({record['steps']} steps, {record['epochs']} epochs, stopped by "
          f"{record['stopped']}; {record['device']}); {load()}")
    print(f"  samples/s          {record['samples_per_s']:8.2f}   (patches of 48 x 64 x 64 at 6 mm, training steps "
          "only)")
    if reached:
        print(f"  time to Dice 0.9   {reached[0] / 60:8.1f} min (step {reached[1]}; validation phantoms, model grid)")
    else:
        print("  time to Dice 0.9   not reached on the validation phantoms")
    best = record["best_validation_dice"]
    print("  validation Dice    " + ", ".join(f"{k} {v:.3f}" for k, v in best.items()))

    print(f"\nunseen phantoms through ai run --model-dir + ai eval (target Dice >= {TARGET_DICE}):")
    print(f"  {'phantom':16} {'lung_left':>10} {'lung_right':>11} {'ratio L':>8} {'ratio R':>8}")
    worst = 1.0
    for s in test_seeds:
        case, pred = tests / f"phantom-{s}", work / "pred" / f"phantom-{s}"
        run = cli("ai", "run", str(case / "image.nii.gz"), "--model-dir", str(model), "--out", str(pred),
                  "--device", args.device)
        if run.returncode != 0:
            print(run.stderr)
            return 1
        ev = cli("ai", "eval", "--pred", str(pred / "labels.nii.gz"), "--ref", str(case / "truth" / "labels.nii.gz"),
                 "--json")
        if ev.returncode != 0:
            print(ev.stderr)
            return 1
        dice = {m["name"]: m["dice"] for m in json.loads(ev.stdout)["labels"]}
        left, right = dice.get("lung_left", 0.0), dice.get("lung_right", 0.0)
        worst = min(worst, left, right)
        print(f"  {'seed ' + str(s):16} {left:10.3f} {right:11.3f} {left / TARGET_DICE:8.2f} "
              f"{right / TARGET_DICE:8.2f}")
    ok = worst >= TARGET_DICE and wall / 60 <= TARGET_MINUTES
    print(f"\nworst lung Dice {worst:.3f} (ratio {worst / TARGET_DICE:.2f}), training {wall / 60:.1f} min of "
          f"{TARGET_MINUTES:g} (ratio {wall / 60 / TARGET_MINUTES:.2f}): "
          f"[{'MET' if ok else 'NOT MET'}: Dice >= {TARGET_DICE} on unseen seeds within {TARGET_MINUTES:g} min]")
    print(f"{load()}; files in {work}" if args.keep else load())
    return 0 if ok else 2


if __name__ == "__main__":
    sys.exit(main())
