"""A batch's results against references, case by case and over the dataset (``radview-cli batch eval``).

Cases are paired by series UID — a prediction folder ``<pred>/<series>/`` (as ``batch run`` writes it; its
findings.json names the series) with ``<ref>/<series_uid>/`` holding ``labels.nii.gz`` + ``labels.json`` —
or listed in a CSV with columns ``pred`` and ``ref``, each a case folder (absolute, or relative to the CSV).

Per case: exactly the metrics of ``radview-cli ai eval`` (``viewer.logic.evaluation``): per label Dice, IoU,
HD95, ASD, volumes; and, when both folders hold findings (``findings.json``; a reference may hold ``nodules.json``
instead), detection precision/recall/F1. Over the dataset: per label name the mean and median of Dice and HD95,
each mean with a 95 % percentile-bootstrap interval (:data:`N_BOOTSTRAP` resamples of the cases, seeded:
the same input gives the same interval); detection TP/FP/FN, precision/recall/F1 and the FROC pooled over the
cases. A case that cannot be evaluated (a missing file, different grids) is listed with its reason and left out
of the figures. Written: ``cases.csv``, ``summary.json``, ``summary.md`` and the plots of
:mod:`viewer.logic.batch_plots`. Qt-free and torch-free.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from viewer.logic.evaluation import NOT_VALIDATION, EvaluationError

N_BOOTSTRAP = 2000
SEED = 20260101
LABELS_FILE, NAMES_FILE = "labels.nii.gz", "labels.json"
CASE_COLUMNS = ("case", "pred", "ref", "label", "name", "dice", "iou", "hd95_mm", "asd_mm", "hd_mm", "volume_pred_ml",
                "volume_ref_ml", "volume_diff_ml", "volume_diff_pct", "note", "tp", "fp", "fn", "precision",
                "recall", "f1", "n_detections", "n_references", "error")


@dataclass(frozen=True)
class Case:
    name: str
    pred: str  # case folders
    ref: str


@dataclass
class Pairing:
    cases: list[Case] = field(default_factory=list)
    unpaired_pred: list[str] = field(default_factory=list)
    unpaired_ref: list[str] = field(default_factory=list)


def _is_case(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, LABELS_FILE))


def _series_of(folder: str) -> str:
    """The series a prediction folder was made on (its findings.json), else the folder's name."""
    try:
        with open(os.path.join(folder, "findings.json"), encoding="utf-8") as fh:
            uid = str((json.load(fh).get("input") or {}).get("series_uid") or "")
    except (OSError, ValueError, AttributeError):
        uid = ""
    return uid or os.path.basename(folder.rstrip(os.sep))


def pair_by_series(pred_dir: str, ref_dir: str) -> Pairing:
    from viewer.logic.exports import safe_name

    for what, folder in (("--pred", pred_dir), ("--ref", ref_dir)):
        if not os.path.isdir(folder):
            raise EvaluationError(f"{what} {folder}: no such folder")
    refs = {name: os.path.join(ref_dir, name) for name in sorted(os.listdir(ref_dir))
            if _is_case(os.path.join(ref_dir, name))}
    out, used = Pairing(), set()
    for name in sorted(os.listdir(pred_dir)):
        folder = os.path.join(pred_dir, name)
        if name.startswith(".") or not _is_case(folder):
            continue
        uid = _series_of(folder)
        match = next((r for r in (uid, safe_name(uid), name) if r in refs), None)
        if match is None:
            out.unpaired_pred.append(name)
            continue
        used.add(match)
        out.cases.append(Case(uid, folder, refs[match]))
    out.unpaired_ref = sorted(set(refs) - used)
    return out


def pair_from_csv(path: str) -> Pairing:
    if not os.path.isfile(path):
        raise EvaluationError(f"--pairs {path}: no such file")
    base = os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise EvaluationError(f"--pairs {path}: not a readable CSV ({exc})") from exc
    if not rows or not {"pred", "ref"} <= set(rows[0]):
        raise EvaluationError(f"--pairs {path}: needs the columns pred and ref")
    out, names = Pairing(), set()
    for i, row in enumerate(rows, start=2):
        pred, ref = (os.path.normpath(os.path.join(base, (row.get(k) or "").strip())) for k in ("pred", "ref"))
        if not (row.get("pred") or "").strip() or not (row.get("ref") or "").strip():
            raise EvaluationError(f"--pairs {path}: line {i} lacks a pred or ref folder")
        name = os.path.basename(pred.rstrip(os.sep)) or f"case{i}"
        while name in names:
            name += "+"
        names.add(name)
        out.cases.append(Case(name, pred, ref))
    return out


# --- one case ----------------------------------------------------------------------------------------------------
def _findings(folder: str, reference: bool) -> str | None:
    for name in ("findings.json", "nodules.json") if reference else ("findings.json",):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def evaluate_case(case: Case, min_score: float = 0.0) -> dict:
    """The result ``radview-cli ai eval --json`` gives for this case's label maps (and findings, when both have)."""
    from viewer.logic import evaluation

    pred_map, ref_map = os.path.join(case.pred, LABELS_FILE), os.path.join(case.ref, LABELS_FILE)
    names = evaluation.label_names((pred_map, ref_map), None, "labels")
    pred, ref = evaluation.read_label_maps(pred_map, ref_map, ("pred", "ref"))
    result = {"case": case.name, "note": NOT_VALIDATION, "detection": None}
    result.update(evaluation.segmentation_agreement(pred, ref, names, pred_map, ref_map))
    pf, rf = _findings(case.pred, False), _findings(case.ref, True)
    if pf and rf:
        preds = evaluation.load_findings(pf, "pred findings")
        refs = evaluation.load_findings(rf, "ref findings")
        result["detection"] = evaluation.detection_agreement(preds, refs, min_score, pf, rf)
        result["detection"]["_cases"] = (preds, refs)
    return result


# --- over the dataset --------------------------------------------------------------------------------------------
def bootstrap_ci(values, n: int = N_BOOTSTRAP, seed: int = SEED) -> list[float]:
    """The 95 % percentile-bootstrap interval of the mean of ``values`` (resampling the cases)."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return [math.nan, math.nan]
    if v.size == 1:
        return [float(v[0]), float(v[0])]
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def describe(values) -> dict:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return {"mean": None, "median": None, "ci95": [None, None], "n": 0}
    return {"mean": float(np.mean(v)), "median": float(np.median(v)), "ci95": bootstrap_ci(v), "n": len(v)}


def _ratios(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def summarise(results: list[dict]) -> dict:
    """summary.json's content from the per-case results (cases with an ``error`` are left out)."""
    good = [r for r in results if not r.get("error")]
    per_label: dict[str, dict[str, list]] = {}
    for r in good:
        for m in r.get("labels") or []:
            entry = per_label.setdefault(m["name"], {"dice": [], "hd95": []})
            entry["dice"].append(m["dice"])
            entry["hd95"].append(m["hd95_mm"])
    labels = {name: {"dice": describe(v["dice"]), "hd95": describe(v["hd95"]), "n_cases": len(v["dice"])}
              for name, v in sorted(per_label.items())}
    detection = None
    with_det = [r for r in good if r.get("detection")]
    if with_det:
        from ai.metrics import froc

        tp, fp, fn = (sum(int(r["detection"][k]) for r in with_det) for k in ("tp", "fp", "fn"))
        precision, recall, f1 = _ratios(tp, fp, fn)
        curve = froc([r["detection"]["_cases"] for r in with_det]).as_dict()
        detection = {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1,
                     "n_cases": len(with_det), "min_score": with_det[0]["detection"]["min_score"], "froc": curve}
    return {"labels": labels, "detection": detection, "n_cases": len(good),
            "failed_cases": [{"case": r["case"], "error": r["error"]} for r in results if r.get("error")],
            "bootstrap": {"resamples": N_BOOTSTRAP, "seed": SEED, "interval": "95 % percentile bootstrap of the mean"},
            "note": NOT_VALIDATION}


# --- files -------------------------------------------------------------------------------------------------------
def _num(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if not math.isfinite(value) else repr(value)
    return str(value)


def cases_csv(results: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CASE_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in results:
        base = {"case": r["case"], "pred": r.get("pred", ""), "ref": r.get("ref", "")}
        if r.get("error"):
            writer.writerow({**base, "error": r["error"]})
            continue
        for m in r.get("labels") or []:
            writer.writerow({**base, **{k: _num(v) for k, v in m.items()}})
        d = r.get("detection")
        if d:
            writer.writerow({**base, "name": "detection", **{k: _num(d[k]) for k in
                                                              ("tp", "fp", "fn", "precision", "recall", "f1",
                                                               "n_detections", "n_references")}})
    return buf.getvalue()


def _f(value, fmt: str) -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def summary_md(summary: dict, pairing: Pairing) -> str:
    lines = ["# Batch evaluation", "", f"{summary['n_cases']} case(s) evaluated."]
    if summary["failed_cases"]:
        lines.append(f"{len(summary['failed_cases'])} case(s) could not be evaluated:")
        lines += [f"- {c['case']}: {c['error']}" for c in summary["failed_cases"]]
    if pairing.unpaired_pred or pairing.unpaired_ref:
        lines.append(f"Unpaired: {len(pairing.unpaired_pred)} prediction(s) without a reference, "
                     f"{len(pairing.unpaired_ref)} reference(s) without a prediction.")
    lines += ["", "## Segmentation", "", "| label | cases | Dice mean [95 % CI] | Dice median | HD95 mm mean [95 % CI] "
              "| HD95 median |", "| --- | ---: | --- | ---: | --- | ---: |"]
    for name, s in summary["labels"].items():
        d, h = s["dice"], s["hd95"]
        lines.append(f"| {name} | {s['n_cases']} | {_f(d['mean'], '.3f')} [{_f(d['ci95'][0], '.3f')}, "
                     f"{_f(d['ci95'][1], '.3f')}] | {_f(d['median'], '.3f')} | {_f(h['mean'], '.2f')} "
                     f"[{_f(h['ci95'][0], '.2f')}, {_f(h['ci95'][1], '.2f')}] | {_f(h['median'], '.2f')} |")
    det = summary["detection"]
    if det:
        f = det["froc"]
        pairs = ", ".join(f"{r:g}: {s:.3f}" for r, s in zip(f["fp_rates"], f["sensitivity_at"]))
        lines += ["", "## Detection (pooled over cases)", "",
                  f"TP {det['tp']}, FP {det['fp']}, FN {det['fn']}: precision {det['precision']:.3f}, "
                  f"recall {det['recall']:.3f}, F1 {det['f1']:.3f} (detections scoring ≥ {det['min_score']:g}).",
                  "", f"FROC sensitivity at FP/scan {pairs} (CPM {f['cpm']:.3f})."]
    lines += ["", f"Intervals: {summary['bootstrap']['interval']}, {summary['bootstrap']['resamples']} resamples.",
              "", NOT_VALIDATION, ""]
    return "\n".join(lines)


def evaluate_batch(pairing: Pairing, out: str, min_score: float = 0.0, progress=None, plots: bool = True) -> dict:
    """Evaluate every case of ``pairing``, write the files into ``out``; return the summary."""
    from radview_base.atomic_file import atomic_write_bytes
    from viewer.export.json_file import json_safe, write_json

    if not pairing.cases:
        raise EvaluationError("no case to evaluate: no prediction was paired with a reference")
    results = []
    for i, case in enumerate(pairing.cases):
        try:
            results.append(evaluate_case(case, min_score))
        except EvaluationError as exc:
            results.append({"case": case.name, "pred": case.pred, "ref": case.ref, "error": str(exc)})
        if progress is not None:
            progress(i + 1, len(pairing.cases), case.name)
    summary = summarise(results)
    summary["unpaired"] = {"pred": pairing.unpaired_pred, "ref": pairing.unpaired_ref}
    os.makedirs(out, exist_ok=True)
    atomic_write_bytes(os.path.join(out, "cases.csv"), cases_csv(results))
    write_json(os.path.join(out, "summary.json"), json_safe(summary))
    atomic_write_bytes(os.path.join(out, "summary.md"), summary_md(summary, pairing))
    summary["plots"] = []
    if plots:
        from viewer.logic.batch_plots import dice_plot, froc_plot

        summary["plots"].append(dice_plot(os.path.join(out, "dice_per_case.png"), results))
        if summary["detection"]:
            summary["plots"].append(froc_plot(os.path.join(out, "froc.png"), summary["detection"]["froc"]))
    return summary
