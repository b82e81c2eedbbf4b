"""``radview-cli ai eval``: agreement of a result with a reference (segmentation and/or detections).

Label maps (``--pred``, ``--ref``; NIfTI, NRRD or MetaImage) must lie on one voxel grid: shape, spacing
and origin within 0.01 mm, direction within 1e-4; otherwise the command refuses and names what differs.
Label names come from a ``labels.json`` (or ``<stem>.json``) beside either file (the reference's win),
then ``--labels``. The labels listed are those present in either map.

Findings (``--pred-findings``, ``--ref-findings``): radview's ``findings.json`` (``detections``, each with
``center_lps_mm``, ``diameter_mm`` and ``score``), or a list of such entries such as the demo's
``truth/nodules.json`` (no ``score``: 1.0). A prediction hits a reference when its centre lies within
the reference's radius; see ``ai.metrics.detection``.

The reading, checking and computing live in ``viewer.logic.evaluation`` (shared with the GUI); this
module checks the options, turns an ``EvaluationError`` into a user error and prints the tables.
"""
from __future__ import annotations

import json
import sys

from viewer.cli.common import UserError
from viewer.logic import evaluation
from viewer.logic.evaluation import NOT_VALIDATION, EvaluationError


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
    pe.add_argument("--task", choices=("segmentation", "classification"), default="segmentation",
                    help="classification: --pred and --ref are CSVs (case + a probability column per class; "
                         "case + a 0/1 column per class, or case,label)")
    pe.add_argument("--threshold", type=float, default=0.5,
                    help="classification, multi-label: a class is predicted where its probability >= T "
                         "(default 0.5)")
    pe.add_argument("--plots", help="classification: write roc.png and confusion.png into this folder")
    pe.set_defaults(func=cmd_eval)


# --- the command ----------------------------------------------------------------------------------------
def cmd_eval(args) -> int:
    if getattr(args, "task", "segmentation") == "classification":
        return _cmd_classification(args)
    if getattr(args, "plots", None):
        raise UserError("--plots goes with --task classification")
    has_maps = bool(args.pred or args.ref)
    has_findings = bool(args.pred_findings or args.ref_findings)
    if not has_maps and not has_findings:
        raise UserError("nothing to compare: give --pred and --ref (label maps) and/or --pred-findings and "
                        "--ref-findings")
    if has_maps and not (args.pred and args.ref):
        raise UserError("--pred and --ref go together: give both label maps")
    if has_findings and not (args.pred_findings and args.ref_findings):
        raise UserError("--pred-findings and --ref-findings go together: give both")
    try:
        result = _evaluate(args, has_maps, has_findings)
    except EvaluationError as exc:
        raise UserError(str(exc)) from exc
    if args.json:
        json.dump(result, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print_tables(result)
    return 0


def _evaluate(args, has_maps: bool, has_findings: bool) -> dict:
    result = {"note": NOT_VALIDATION, "pred": None, "ref": None, "labels": None, "detection": None}
    if has_findings:  # cheap checks first: a bad findings file fails before the label maps are read
        preds = evaluation.load_findings(args.pred_findings, "--pred-findings")
        refs = evaluation.load_findings(args.ref_findings, "--ref-findings")
    if has_maps:
        names = evaluation.label_names((args.pred, args.ref), args.labels, "--labels")
        pred, ref = evaluation.read_label_maps(args.pred, args.ref, ("--pred", "--ref"))
        result.update(evaluation.segmentation_agreement(pred, ref, names, args.pred, args.ref))
    if has_findings:
        result["detection"] = evaluation.detection_agreement(preds, refs, args.min_score, args.pred_findings,
                                                             args.ref_findings)
    return result


def _cmd_classification(args) -> int:
    from viewer.logic import classification_metrics as cm

    if not (args.pred and args.ref):
        raise UserError("--task classification needs --pred PRED.csv and --ref REF.csv")
    if args.pred_findings or args.ref_findings or args.labels:
        raise UserError("--pred-findings, --ref-findings and --labels do not go with --task classification")
    try:
        table = cm.read_tables(args.pred, args.ref)
        result = cm.evaluate(table, args.threshold)
        plots = cm.write_plots(table, result, args.plots) if args.plots else []
    except cm.ClassificationDataError as exc:
        raise UserError(str(exc)) from exc
    result["pred"], result["ref"] = args.pred, args.ref
    if args.json:
        json.dump(result, sys.stdout, indent=2, allow_nan=False)
        sys.stdout.write("\n")
    else:
        _print_classification(result)
    if plots:
        print(f"wrote {', '.join(plots)}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _ci(m: dict, key: str) -> str:
    ci = m["ci95"].get(key)
    return _num(m[key], ".3f") + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _print_classification(result: dict) -> None:
    print(f"Classification: {result['pred']} vs reference {result['ref']}: {result['n_cases']} case(s), "
          f"{result['mode']}")
    rows = [["CLASS", "SUPPORT", "ACCURACY", "PRECISION", "RECALL", "F1", "ROC AUC"]]
    named = [(name, m) for name, m in result["classes"].items()] + [("macro", result["macro"]),
                                                                     ("micro", result["micro"])]
    for name, m in named:
        rows.append([name, str(m.get("support", "")), _ci(m, "accuracy"), _ci(m, "precision"), _ci(m, "recall"),
                     _ci(m, "f1"), _ci(m, "auc")])
    for line in _table(rows, right={1}):
        print(line)
    acc_ci = result["accuracy_ci95"]
    print(f"accuracy (every class right) {result['accuracy']:.3f}"
          + (f" [{acc_ci[0]:.3f}, {acc_ci[1]:.3f}]" if acc_ci else "")
          + f"; [95% bootstrap intervals over cases, {result['bootstrap']} resamples]")
    conf = result["confusion"]
    print(f"Confusion ({conf['layout']}):")
    if result["threshold"] is None:
        width = max(len(c) for c in conf["classes"])
        print("  " + " " * width + "  " + "  ".join(c.rjust(max(len(c), 5)) for c in conf["classes"]))
        for c, row in zip(conf["classes"], conf["matrix"]):
            print("  " + c.ljust(width) + "  " + "  ".join(str(v).rjust(max(len(h), 5))
                                                         for v, h in zip(row, conf["classes"])))
    else:
        for c, ((tn, fp), (fn, tp)) in zip(conf["classes"], conf["matrix"]):
            print(f"  {c}: TN {tn}  FP {fp}  FN {fn}  TP {tp}")
    print(result["note"])


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
