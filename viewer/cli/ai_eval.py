"""``radview-cli ai eval``: agreement of a result with a reference (segmentation and/or detections).

Label maps (``--pred``, ``--ref``; NIfTI, NRRD or MetaImage) must lie on one voxel grid: shape, spacing
and origin within 0.01 mm, direction within 1e-4; otherwise the command refuses and names what differs.
Label names come from a ``labels.json`` (or ``<stem>.json``) beside either file (the reference's win),
then ``--labels``. The labels listed are those present in either map.

Findings (``--pred-findings``, ``--ref-findings``): radview's ``findings.json`` (``detections``, each with
``center_lps_mm``, ``diameter_mm`` and ``score``), or a list of such entries such as the demo's
``truth/nodules.json`` (no ``score``: 1.0). A prediction hits a reference when its centre lies within
the reference's radius; see ``ai.metrics.detection``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

from viewer.cli.main import UserError

NOT_VALIDATION = "These are agreement figures against the given reference, not a clinical validation."
SPACING_TOL_MM = 0.01
ORIGIN_TOL_MM = 0.01
DIRECTION_TOL = 1e-4


def add_parser(asub) -> None:
    """Register ``ai eval`` on the ``ai`` subparsers."""
    pe = asub.add_parser("eval", help="agreement with a reference: Dice, IoU, surface distances, volumes; "
                                      "detection precision/recall/F1 and FROC")
    pe.add_argument("--pred", help="the label map to evaluate (NIfTI/NRRD/MHA)")
    pe.add_argument("--ref", help="the reference label map, on the same voxel grid")
    pe.add_argument("--pred-findings", help="findings.json of the result (or a list of detections)")
    pe.add_argument("--ref-findings", help="reference findings: findings.json or nodules.json")
    pe.add_argument("--labels", help='label names as JSON, {"1": "body", ...} (overrides labels.json)')
    pe.add_argument("--min-score", type=float, default=0.0,
                    help="detections scoring below this are left out of precision/recall/F1 (default 0)")
    pe.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    pe.set_defaults(func=cmd_eval)


# --- inputs ---------------------------------------------------------------------------------------------
def _require_file(option: str, path: str) -> None:
    if not os.path.isfile(path):
        raise UserError(f"{option} {path}: no such file")


def _fmt(values, unit: str = "") -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")" + unit


def grid_differences(a, b) -> list[str]:
    """What differs between two ``Geometry`` grids (pred ``a`` vs ref ``b``), in words; empty when they match."""
    import numpy as np

    out = []
    if a.shape_zyx != b.shape_zyx:
        out.append(f"shape (z, y, x) {'×'.join(map(str, a.shape_zyx))} vs {'×'.join(map(str, b.shape_zyx))}")
    if np.max(np.abs(np.subtract(a.spacing_zyx, b.spacing_zyx))) > SPACING_TOL_MM:
        out.append(f"spacing (z, y, x) {_fmt(a.spacing_zyx)} vs {_fmt(b.spacing_zyx, ' mm')}")
    if np.max(np.abs(np.subtract(a.origin_lps, b.origin_lps))) > ORIGIN_TOL_MM:
        out.append(f"origin (LPS) {_fmt(np.round(a.origin_lps, 3))} vs {_fmt(np.round(b.origin_lps, 3), ' mm')}")
    if np.max(np.abs(np.subtract(a.direction, b.direction))) > DIRECTION_TOL:
        flat = lambda d: _fmt(np.round(np.ravel(d), 4))  # noqa: E731
        out.append(f"direction {flat(a.direction)} vs {flat(b.direction)}")
    return out


def _read_label_maps(pred_path: str, ref_path: str):
    from viewer.io.image_io import ImageFileError, read_label_map

    maps = []
    for option, path in (("--pred", pred_path), ("--ref", ref_path)):
        _require_file(option, path)
        try:
            maps.append(read_label_map(path, labels={}))
        except ImageFileError as exc:
            raise UserError(str(exc)) from exc
    pred, ref = maps
    diffs = grid_differences(pred.geometry, ref.geometry)
    if diffs:
        raise UserError(f"the label maps lie on different voxel grids: {'; '.join(diffs)} (pred vs ref); "
                        f"resample the prediction onto the reference's grid first")
    return pred, ref


def _names(args) -> dict[int, str]:
    from radview_base.label_table import read_label_names

    names: dict[int, str] = {}
    for path in (args.pred, args.ref):
        if path:
            names.update(read_label_names(path))
    if args.labels:
        _require_file("--labels", args.labels)
        try:
            with open(args.labels, encoding="utf-8") as fh:
                data = json.load(fh)
            if isinstance(data, dict) and isinstance(data.get("labels"), dict):
                data = data["labels"]
            names.update({int(k): str(v) for k, v in data.items()})
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            raise UserError(f'--labels {args.labels}: not a JSON object of label names ({{"1": "body"}}): '
                            f"{exc}") from exc
    return names


def load_findings(path: str, option: str) -> list[dict]:
    """The detections of a findings.json, or the entries of a list (nodules.json), checked."""
    _require_file(option, path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise UserError(f"{option} {path}: not readable JSON ({exc})") from exc
    entries = data.get("detections") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise UserError(f"{option} {path}: expected findings.json (with 'detections') or a list of nodules")
    out = []
    for i, e in enumerate(entries):
        try:
            centre = [float(v) for v in e["center_lps_mm"]]
            if len(centre) != 3 or not all(math.isfinite(v) for v in centre):
                raise ValueError("center_lps_mm is not three finite numbers")
            out.append({"center_lps_mm": centre, "diameter_mm": float(e.get("diameter_mm", 0.0)),
                        "score": float(e.get("score", 1.0))})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UserError(f"{option} {path}: entry {i + 1} is not a finding with center_lps_mm and diameter_mm "
                            f"({exc})") from exc
    return out


# --- the command ----------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    has_maps = bool(args.pred or args.ref)
    has_findings = bool(args.pred_findings or args.ref_findings)
    if not has_maps and not has_findings:
        raise UserError("nothing to compare: give --pred and --ref (label maps) and/or --pred-findings and "
                        "--ref-findings")
    if has_maps and not (args.pred and args.ref):
        raise UserError("--pred and --ref go together: give both label maps")
    if has_findings and not (args.pred_findings and args.ref_findings):
        raise UserError("--pred-findings and --ref-findings go together: give both")
    result = {"note": NOT_VALIDATION, "pred": None, "ref": None, "labels": None, "detection": None}
    if has_findings:  # cheap checks first: a bad findings file fails before the label maps are read
        preds = load_findings(args.pred_findings, "--pred-findings")
        refs = load_findings(args.ref_findings, "--ref-findings")
    if has_maps:
        result.update(_segmentation(args))
    if has_findings:
        result["detection"] = _detection(preds, refs, args)
    if args.json:
        json.dump(result, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print_tables(result)
    return 0


def _segmentation(args) -> dict:
    from ai.metrics import segmentation_metrics

    names = _names(args)
    pred, ref = _read_label_maps(args.pred, args.ref)
    metrics = segmentation_metrics(pred.array, ref.array, ref.geometry.spacing_zyx)  # labels present in either
    metrics = [dataclasses.replace(m, name=names.get(m.label, m.name)) for m in metrics]
    return {"pred": os.path.abspath(args.pred), "ref": os.path.abspath(args.ref),
            "grid": {"shape_zyx": list(ref.geometry.shape_zyx), "spacing_zyx": list(ref.geometry.spacing_zyx)},
            "labels": [m.as_dict() for m in metrics]}


def _detection(preds: list[dict], refs: list[dict], args) -> dict:
    from ai.metrics import detection_metrics, froc

    m = detection_metrics(preds, refs, min_score=args.min_score)
    f = froc([(preds, refs)])
    return {"pred_findings": os.path.abspath(args.pred_findings), "ref_findings": os.path.abspath(args.ref_findings),
            **m.as_dict(), "froc": f.as_dict()}


# --- text output ---------------------------------------------------------------------------------------------
def _num(value, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def _print_tables(result: dict) -> None:
    if result["labels"] is not None:
        print(f"Segmentation: {result['pred']} vs reference {result['ref']}")
        rows = [["LABEL", "NAME", "DICE", "IOU", "HD95 mm", "ASD mm", "VOL PRED mL", "VOL REF mL", "ΔVOL %", ""]]
        for m in result["labels"]:
            pct = m["volume_diff_pct"]
            rows.append([str(m["label"]), m["name"], _num(m["dice"], ".4f"), _num(m["iou"], ".4f"),
                         _num(m["hd95_mm"], ".2f"), _num(m["asd_mm"], ".2f"), _num(m["volume_pred_ml"], ".2f"),
                         _num(m["volume_ref_ml"], ".2f"), _num(pct, "+.1f"), m["note"]])
        if len(rows) == 1:
            print("  (neither label map holds any label)")
        else:
            for line in _table(rows, right={0, 2, 3, 4, 5, 6, 7, 8}):
                print(line)
    d = result["detection"]
    if d is not None:
        if result["labels"] is not None:
            print()
        print(f"Detection: {d['pred_findings']} vs reference {d['ref_findings']}")
        print(f"  {d['n_detections']} detection(s) scoring ≥ {d['min_score']:g}, {d['n_references']} reference(s): "
              f"TP {d['tp']}, FP {d['fp']}, FN {d['fn']}, {d['ignored']} more inside an already-found reference "
              f"(not counted)")
        print(f"  precision {d['precision']:.3f}  recall {d['recall']:.3f}  F1 {d['f1']:.3f}")
        f = d["froc"]
        pairs = "  ".join(f"{r:g}: {s:.3f}" for r, s in zip(f["fp_rates"], f["sensitivity_at"]))
        print(f"  FROC sensitivity at FP/scan  {pairs}  (CPM {f['cpm']:.3f})")
    print(NOT_VALIDATION)
