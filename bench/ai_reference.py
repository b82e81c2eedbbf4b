"""The built-in CT models against the reference set, side by side with a plain-threshold baseline.

    python bench/ai.py --reference [--sources tcia,phantom,phantom-3] [--seeds 1,2,...,12]
                       [--baseline-ref 71b7642] [--no-times]

Three parts, all measured in this run:

1. Quality (tests/data/ct-reference): per case (the real TCIA CT with its documented reference masks,
   the demo phantom and a seeded phantom with their own truth; native, 1/2/3/5 mm slices, 3 mm isotropic,
   low-dose noise) and per model, Dice / recall / precision and run time, beside the plain-threshold
   baseline of ``reference_set.baseline`` on the same case (``--variants`` picks some).  Targets:
   ct-bone >= 0.85, ct-body >= 0.97, ct-lungs >= 0.95, each above its baseline.
2. Run times against today's models: the models of git commit ``--baseline-ref`` (the built-ins before
   issue 17) are extracted with ``git archive`` into a temporary folder and timed in a child process on
   the same arrays (the real CT and the demo phantom), alternating with the current ones
   (baseline, current, baseline, current; the better of two passes each).  Target: <= 1.3x.
3. Nodules: FROC over seeded phantoms (``radview-cli demo --seed N``; their nodule lists are the truth:
   a candidate is a hit when its centre lies within the nodule's radius, or 3 mm), sensitivity for
   nodules >= 6 mm and false positives per scan at the manifest's default threshold, and every candidate
   at that threshold on the real CT, with its reason.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "tests" / "data" / "ct-reference"
TARGETS = {"ct-body": ("body", (1,), 0.97), "ct-lungs": ("lungs", (2, 3), 0.95), "ct-bone": ("bone", (7,), 0.85)}
BASELINE_REF = "71b7642"  # main before issue 17: the built-in models as they were


def _rs():
    sys.path.insert(0, str(REF_DIR))
    import reference_set

    return reference_set


def _verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


# ---------------------------------------------------------------- 1. quality
def quality(sources, device: str = "cpu", names=None) -> list[dict]:
    from ai.api import InferenceRequest
    from ai.engine import Engine

    rs = _rs()
    eng = Engine()
    rows = []
    print(f"{'case':34s} {'model':9s} {'Dice':>6s} {'recall':>6s} {'prec':>6s} {'time':>6s} | "
          f"{'threshold baseline':>18s} {'time':>6s} | target")
    for case in rs.cases(sources, names):
        for model, (mask, labels, target) in TARGETS.items():
            t0 = time.perf_counter()
            res = eng.run(InferenceRequest(case.hu, case.geometry, model, device=device))
            dt = time.perf_counter() - t0
            d, r, p = rs.overlap(np.isin(res.labels, labels), case.masks[mask])
            t0 = time.perf_counter()
            base = rs.baseline(case, mask)
            bt = time.perf_counter() - t0
            bd, br, bp = rs.overlap(base, case.masks[mask])
            ok = d >= target and d > bd
            tie = d >= target and not ok and min(d, bd) >= 0.998  # both perfect: nothing to beat on this case
            rows.append(dict(case=case.name, model=model, dice=d, recall=r, precision=p, seconds=dt, base_dice=bd,
                             base_seconds=bt, ok=ok, tie=tie))
            said = "TIE (both >= 0.998: nothing to beat here)" if tie else _verdict(ok)
            print(f"{case.name:34s} {model:9s} {d:6.3f} {r:6.3f} {p:6.3f} {dt:5.1f}s | "
                  f"{bd:6.3f} ({br:4.2f}/{bp:4.2f}) {bt:5.1f}s | >= {target}, > baseline: {said}", flush=True)
    return rows


# ----------------------------------------------------------- 2. run times
_TIMER = r"""
import json, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
from ai.api import InferenceRequest
from ai.engine import Engine
from radview_base.geometry import Geometry
eng = Engine()
out = {}
for case in json.loads(sys.argv[2]):
    arr = np.load(case["npy"])
    g = Geometry(tuple(case["shape"]), tuple(case["spacing"]), tuple(case["origin"]), tuple(case["direction"]))
    for model in case["models"]:
        req = InferenceRequest(arr, g, model, device="cpu")
        t0 = time.perf_counter(); eng.run(req)
        out[case["name"] + "|" + model] = time.perf_counter() - t0
print(json.dumps(out))
"""


def _export_tree(ref: str, dest: Path) -> None:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "ai", "radview_base"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def _time_tree(tree: Path, cases: list[dict]) -> dict:
    r = subprocess.run([sys.executable, "-c", _TIMER, str(tree), json.dumps(cases)], capture_output=True,
                       text=True, cwd=str(tree))
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_times(sources, ref: str = BASELINE_REF) -> list[tuple[str, float, float]]:
    rs = _rs()
    models = ["ct-body", "ct-lungs", "ct-bone", "ct-lung-nodules"]
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "baseline"
        old.mkdir()
        _export_tree(ref, old)
        cases = []
        for source in sources:
            if not rs.available(source):
                continue
            case = rs.native(source)
            npy = Path(tmp) / f"{source}.npy"
            np.save(npy, case.hu)
            g = case.geometry
            cases.append(dict(name=case.name, npy=str(npy), shape=list(g.shape_zyx), spacing=list(g.spacing_zyx),
                              origin=list(g.origin_lps), direction=list(np.asarray(g.direction).ravel()),
                              models=models))
        # alternate (baseline, current, baseline, current): a busy machine weighs on both alike
        old1, new1 = _time_tree(old, cases), _time_tree(ROOT, cases)
        old2, new2 = _time_tree(old, cases), _time_tree(ROOT, cases)
    rows = []
    print(f"{'case':22s} {'model':16s} {'before (' + ref + ')':>18s} {'now':>8s} {'ratio':>6s} | target <= 1.3x")
    for key in old1:
        before, now = min(old1[key], old2[key]), min(new1[key], new2[key])
        name, model = key.split("|")
        rows.append((key, before, now))
        print(f"{name:22s} {model:16s} {before:17.2f}s {now:7.2f}s {now / before:5.2f}x | "
              f"{_verdict(now <= 1.3 * before)}", flush=True)
    return rows


# -------------------------------------------------------------- 3. nodules
def _hit(det, nodule) -> bool:
    return float(np.linalg.norm(np.subtract(det.center_lps, nodule.center_lps_mm))) <= max(nodule.diameter_mm / 2,
                                                                                           3.0)


def nodules(seeds, device: str = "cpu", with_real: bool = True, png_dir: str | None = None, top: int = 5) -> dict:
    from ai.api import InferenceRequest
    from ai.engine import Engine
    from radview_base.geometry import Geometry
    from viewer.demo.phantom import DEFAULT_SEED, make_phantom

    eng = Engine()
    default = _default_min_score()
    scans = []
    for seed in seeds:
        p = make_phantom(DEFAULT_SEED if seed is None else seed)
        g = Geometry(p.hu_zyx.shape, p.grid.spacing_zyx, p.grid.origin_lps)
        t0 = time.perf_counter()
        res = eng.run(InferenceRequest(p.hu_zyx, g, "ct-lung-nodules", device=device, options={"min_score": 0.0}))
        dt = time.perf_counter() - t0
        dets = [(d.score, [n.id for n in p.nodules if _hit(d, n)]) for d in res.detections]
        scans.append(dict(seed=seed, nodules=[(n.id, n.diameter_mm, n.type) for n in p.nodules], dets=dets,
                          seconds=dt))
        target = [n for n in p.nodules if n.diameter_mm >= 6.0]
        found = [n for n in target if any(s >= default and n.id in ids for s, ids in dets)]
        fp = sum(1 for s, ids in dets if s >= default and not ids)
        print(f"  seed {'demo' if seed is None else seed:>4}: {len(found)}/{len(target)} nodules >= 6 mm found, "
              f"{fp} false positives at score >= {default} ({dt:.0f} s)", flush=True)
    print("FROC (nodules >= 6 mm, seeded phantoms):")
    n_target = sum(1 for s in scans for _, d, _ in s["nodules"] if d >= 6.0)
    for thr in (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7):
        tp = sum(1 for s in scans for nid, d, _ in s["nodules"]
                 if d >= 6.0 and any(sc >= thr and nid in ids for sc, ids in s["dets"]))
        fp = sum(1 for s in scans for sc, ids in s["dets"] if sc >= thr and not ids)
        mark = "  <- default" if abs(thr - default) < 1e-9 else ""
        print(f"  score >= {thr:4.2f}: sensitivity {tp}/{n_target} = {tp / max(n_target, 1):.2f}, "
              f"{fp / len(scans):.2f} false positives per scan{mark}")
    out = {"scans": scans, "default": default}
    if with_real:
        rs = _rs()
        if rs.available("tcia"):
            case = rs.native("tcia")
            res = eng.run(InferenceRequest(case.hu, case.geometry, "ct-lung-nodules", device=device,
                                           options={"min_score": 0.0}))
            above = [d for d in res.detections if d.score >= default]
            out["tcia"] = [(d.center_lps, d.score, d.diameter_mm) for d in res.detections]
            print(f"Real CT (ct-pancreas-tcia, no nodule known): {len(above)} candidate(s) at the default threshold "
                  f"{default}; the {min(top, len(res.detections))} best-scored of all {len(res.detections)}:")
            order = sorted(range(len(res.detections)), key=lambda i: -res.detections[i].score)[:top]
            reasons = res.provenance.parameters.get("reasons", [])
            for rank, i in enumerate(order, start=1):
                d = res.detections[i]
                k = np.asarray(case.geometry.world_to_index(d.center_lps)).ravel()
                z = int(round(k[0]))
                image = case.image_numbers[z] if case.image_numbers else "not given"
                print(f"  {rank}. image {image} (array slice {z}), "
                      f"row {k[1]:.0f}, column {k[2]:.0f}: {reasons[i] if i < len(reasons) else d.score}")
                if png_dir:
                    _crop_png(case.hu, k, d.diameter_mm, case.geometry.spacing_zyx,
                              Path(png_dir) / f"tcia_candidate_{rank}.png", f"{rank}: score {d.score:.2f}")
            if png_dir:
                print(f"  crops (lung window, slices k-1, k, k+1, the candidate circled) in {png_dir}")
    return out


def _crop_png(hu, k, diameter_mm, spacing, path: Path, title: str, half_mm: float = 30.0) -> None:
    from PIL import Image, ImageDraw

    path.parent.mkdir(parents=True, exist_ok=True)
    kk, jj, ii = (int(round(v)) for v in k)
    hy, hx = (int(half_mm / s) for s in spacing[1:])
    tiles = []
    for dk in (-1, 0, 1):
        z = min(max(kk + dk, 0), hu.shape[0] - 1)
        a = hu[z, max(0, jj - hy):jj + hy, max(0, ii - hx):ii + hx].astype(np.float32)
        g = (np.clip((a + 1350.0) / 1500.0, 0, 1) * 255).astype(np.uint8)  # lung window W 1500 / L -600
        im = Image.fromarray(g).resize((g.shape[1] * 4, g.shape[0] * 4), Image.NEAREST).convert("RGB")
        dr = ImageDraw.Draw(im)
        r = 4 * (diameter_mm / 2 + 2) / spacing[2]
        cx, cy = 4 * (ii - max(0, ii - hx)), 4 * (jj - max(0, jj - hy))
        if dk == 0:
            dr.ellipse((cx - r, cy - r, cx + r, cy + r), outline=(255, 200, 0))
        dr.text((4, 4), f"{title}  slice {z}", fill=(255, 255, 0))
        tiles.append(im)
    sheet = Image.new("RGB", (sum(t.width for t in tiles), tiles[0].height))
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width
    sheet.save(path)


def _default_min_score() -> float:
    import tomllib

    data = tomllib.loads((ROOT / "ai" / "manifests" / "ct-lung-nodules.toml").read_text())
    return float(data["parameters"]["min_score"])


def main(args) -> int:
    sources = args.sources.split(",")
    skip = set(filter(None, args.skip.split(","))) | ({"times"} if args.no_times else set())
    rs = _rs()
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) on {os.cpu_count()} CPUs")
    if "quality" not in skip:
        print("== 1. quality against the reference set")
        rows = quality(sources, args.device, args.variants.split(",") if args.variants else None)
        print(f"quality: {sum(r['ok'] for r in rows)}/{len(rows)} model-case pairs meet their target and beat the "
              f"baseline; {sum(r['tie'] for r in rows)} meet it where the baseline is as perfect; "
              f"{sum(r['dice'] < TARGETS[r['model']][2] for r in rows)} below target")
    if "times" not in skip:
        print(f"== 2. run times against the models of {args.baseline_ref} (same arrays, same run)")
        run_times([s for s in ("tcia", "phantom") if rs.available(s)], args.baseline_ref)
    if "nodules" not in skip:
        print("== 3. nodules")
        given = [s.strip().lower() for s in args.seeds.split(",") if s.strip()]
        bad = [s for s in given if s != "demo" and not s.lstrip("-").isdigit()]
        if bad:
            raise SystemExit(f"--seeds: integers or 'demo' (the demo's phantom is always included), not {bad}")
        seeds = [None] + [int(s) for s in given if s != "demo"]
        nodules(seeds, args.device, png_dir=args.png)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    return 0
