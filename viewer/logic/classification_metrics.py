"""Agreement of classification probabilities with reference labels, without Qt (``radview-cli ai eval --task
classification``).

PRED is a CSV with a ``case`` column and one probability column per class. REF is a CSV with a ``case`` column and
one 0/1 column per class (multi-label: each class is decided by ``probability >= threshold``), or the columns
``case,label`` (single-label: the predicted class is the most probable one). Cases are matched by ``case``; both
files must hold the same cases.

Per class (one against the rest) and averaged: accuracy, precision, recall, F1 and ROC AUC (the rank statistic,
ties counted half: scikit-learn's ``roc_auc_score``), each with a 95 % percentile bootstrap interval over cases,
and the confusion matrix. ``macro`` is the mean over classes; ``micro`` pools every (case, class) decision
(single-label: micro precision = recall = F1 = accuracy). ``accuracy`` is the share of cases whose every class
is right (single-label: the top class is the reference's). Undefined figures (an AUC for a class without
positives or without negatives) are ``None``; precision or recall with an empty denominator is 0, as in
scikit-learn. Bad input raises :class:`ClassificationDataError` with a one-line reason.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass

import numpy as np

NOT_VALIDATION = "These are agreement figures against the given reference, not a clinical validation."
METRICS = ("accuracy", "precision", "recall", "f1", "auc")
BOOTSTRAP = 1000
MAX_ROWS = 1_000_000


class ClassificationDataError(ValueError):
    """A PRED or REF CSV is missing, unreadable or does not fit the other: a one-line message."""


@dataclass(frozen=True)
class Table:
    """Matched cases: ``scores`` (n, K) probabilities; ``truth`` (n, K) 0/1; ``single`` = single-label."""

    cases: list[str]
    classes: list[str]
    scores: np.ndarray
    truth: np.ndarray
    single: bool


# --- reading ----------------------------------------------------------------------------------------------------
def _read_csv(path: str, what: str) -> tuple[list[str], list[list[str]]]:
    if not os.path.isfile(path):
        raise ClassificationDataError(f"{what} {path}: no such file")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ClassificationDataError(f"{what} {path}: cannot read it as CSV: {exc}") from None
    if not rows:
        raise ClassificationDataError(f"{what} {path}: the file is empty")
    if len(rows) > MAX_ROWS:
        raise ClassificationDataError(f"{what} {path}: more than {MAX_ROWS} rows")
    header = [h.strip() for h in rows[0]]
    if "case" not in header:
        raise ClassificationDataError(f"{what} {path}: no 'case' column (the header is {','.join(header)[:120]})")
    if len(set(header)) != len(header) or any(not h for h in header):
        raise ClassificationDataError(f"{what} {path}: the header has an empty or repeated column name")
    body = rows[1:]
    if not body:
        raise ClassificationDataError(f"{what} {path}: no cases (only a header)")
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise ClassificationDataError(f"{what} {path}: line {i} has {len(r)} fields, the header {len(header)}")
    cases = [r[header.index("case")].strip() for r in body]
    seen = set()
    for i, c in enumerate(cases, start=2):
        if not c:
            raise ClassificationDataError(f"{what} {path}: line {i} has an empty case")
        if c in seen:
            raise ClassificationDataError(f"{what} {path}: case {c!r} appears twice")
        seen.add(c)
    return header, body


def _number(text: str, what: str, line: int, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ClassificationDataError(f"{what} line {line}, column {column!r}: {text.strip()[:40]!r} is not a "
                                      "number") from None
    if not math.isfinite(value):
        raise ClassificationDataError(f"{what} line {line}, column {column!r}: {text.strip()!r} is not finite")
    return value


def read_tables(pred_path: str, ref_path: str, what: tuple[str, str] = ("--pred", "--ref")) -> Table:
    """Read and match PRED and REF (see the module docstring); raise ClassificationDataError naming the problem."""
    wp, wr = what
    ph, pbody = _read_csv(pred_path, wp)
    rh, rbody = _read_csv(ref_path, wr)
    classes = [h for h in ph if h != "case"]
    if not classes:
        raise ClassificationDataError(f"{wp} {pred_path}: no probability columns besides 'case'")
    single = sorted(rh) == ["case", "label"]
    if not single:
        ref_classes = [h for h in rh if h != "case"]
        missing = [c for c in ref_classes if c not in classes]
        extra = [c for c in classes if c not in ref_classes]
        if missing or extra:
            parts = ([f"{wr} has class(es) {', '.join(missing)} that {wp} lacks"] if missing else []) + \
                    ([f"{wp} has class(es) {', '.join(extra)} that {wr} lacks"] if extra else [])
            raise ClassificationDataError("; ".join(parts))
    pcase = {r[ph.index("case")].strip(): (i, r) for i, r in enumerate(pbody, start=2)}
    rcase = {r[rh.index("case")].strip(): (i, r) for i, r in enumerate(rbody, start=2)}
    only_p = [c for c in pcase if c not in rcase]
    only_r = [c for c in rcase if c not in pcase]
    if only_p or only_r:
        side = f"{len(only_r)} case(s) of {wr} missing from {wp} (e.g. {only_r[0]!r})" if only_r else \
            f"{len(only_p)} case(s) of {wp} missing from {wr} (e.g. {only_p[0]!r})"
        raise ClassificationDataError(f"the files do not hold the same cases: {side}")
    cases = list(rcase)
    k = len(classes)
    scores = np.zeros((len(cases), k))
    truth = np.zeros((len(cases), k), dtype=np.int8)
    for n, case in enumerate(cases):
        line, row = pcase[case]
        for j, c in enumerate(classes):
            v = _number(row[ph.index(c)], wp, line, c)
            if not 0.0 <= v <= 1.0:
                raise ClassificationDataError(f"{wp} line {line}, column {c!r}: {v:g} is not a probability in "
                                              "[0, 1]")
            scores[n, j] = v
        line, row = rcase[case]
        if single:
            label = row[rh.index("label")].strip()
            if label not in classes:
                raise ClassificationDataError(f"{wr} line {line}: label {label[:40]!r} is not one of {wp}'s classes "
                                              f"({', '.join(classes)[:120]})")
            truth[n, classes.index(label)] = 1
        else:
            for j, c in enumerate(classes):
                v = row[rh.index(c)].strip()
                if v not in ("0", "1", "0.0", "1.0"):
                    raise ClassificationDataError(f"{wr} line {line}, column {c!r}: {v[:40]!r} is not 0 or 1")
                truth[n, j] = int(float(v))
    if single and k < 2:
        raise ClassificationDataError(f"single-label evaluation needs at least two classes in {wp}")
    return Table(cases, classes, scores, truth, single)


# --- metrics ----------------------------------------------------------------------------------------------------
def roc_auc(y: np.ndarray, s: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with mid-ranks); None without positives or negatives."""
    y = np.asarray(y).astype(bool)
    pos = int(y.sum())
    neg = y.size - pos
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ss = np.asarray(s)[order]
    # mid-ranks of ties
    boundaries = np.flatnonzero(np.diff(ss)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(ss)]))
    mid = (starts + ends - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(mid, ends - starts)
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def roc_curve(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates over all thresholds (for the plots)."""
    y = np.asarray(y).astype(bool)
    order = np.argsort(-np.asarray(s), kind="mergesort")
    ys, ss = y[order], np.asarray(s)[order]
    last = np.r_[np.flatnonzero(np.diff(ss)), len(ss) - 1]
    tp = np.cumsum(ys)[last]
    fp = (last + 1) - tp
    pos, neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    return np.r_[0.0, fp / neg], np.r_[0.0, tp / pos]


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def _counts_metrics(tp, fp, fn, tn) -> dict:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return {"accuracy": _ratio(tp + tn, tp + fp + fn + tn), "precision": precision, "recall": recall,
            "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


def decisions(table: Table, threshold: float) -> np.ndarray:
    """0/1 (n, K): multi-label ``score >= threshold``; single-label the top class."""
    if table.single:
        out = np.zeros_like(table.truth)
        out[np.arange(len(table.cases)), np.argmax(table.scores, axis=1)] = 1
        return out
    return (table.scores >= threshold).astype(np.int8)


def point_metrics(truth: np.ndarray, scores: np.ndarray, pred: np.ndarray, single: bool) -> dict:
    """Per class, macro and micro figures, and the overall accuracy, for one set of cases."""
    t, p = truth.astype(bool), pred.astype(bool)
    tp = (t & p).sum(0)
    fp = (~t & p).sum(0)
    fn = (t & ~p).sum(0)
    tn = (~t & ~p).sum(0)
    per = []
    for j in range(truth.shape[1]):
        m = _counts_metrics(tp[j], fp[j], fn[j], tn[j])
        m["auc"] = roc_auc(t[:, j], scores[:, j])
        per.append(m)
    macro = {k: float(np.mean([m[k] for m in per])) for k in ("accuracy", "precision", "recall", "f1")}
    aucs = [m["auc"] for m in per if m["auc"] is not None]
    macro["auc"] = float(np.mean(aucs)) if aucs and len(aucs) == len(per) else None
    micro = _counts_metrics(tp.sum(), fp.sum(), fn.sum(), tn.sum())
    micro["auc"] = roc_auc(t.ravel(), scores.ravel())
    overall = float(np.mean(np.all(t == p, axis=1)))
    if single:
        micro["accuracy"] = overall
    return {"per_class": per, "macro": macro, "micro": micro, "accuracy": overall}


def confusion(table: Table, pred: np.ndarray) -> list:
    """Single-label: K×K counts, rows the reference, columns the prediction. Multi-label: per class [[TN, FP],
    [FN, TP]] (scikit-learn's ``multilabel_confusion_matrix``)."""
    t, p = table.truth.astype(bool), pred.astype(bool)
    if table.single:
        k = len(table.classes)
        m = np.zeros((k, k), dtype=int)
        np.add.at(m, (np.argmax(table.truth, 1), np.argmax(pred, 1)), 1)
        return m.tolist()
    return [[[int((~t[:, j] & ~p[:, j]).sum()), int((~t[:, j] & p[:, j]).sum())],
             [int((t[:, j] & ~p[:, j]).sum()), int((t[:, j] & p[:, j]).sum())]] for j in range(t.shape[1])]


def _interval(values: list, level: float) -> list | None:
    vals = np.array([v for v in values if v is not None], dtype=float)
    if vals.size < 10:
        return None
    a = (1.0 - level) / 2.0
    return [float(np.quantile(vals, a)), float(np.quantile(vals, 1.0 - a))]


def evaluate(table: Table, threshold: float = 0.5, n_boot: int = BOOTSTRAP, seed: int = 0,
             level: float = 0.95) -> dict:
    """Everything ``ai eval --task classification --json`` writes."""
    if not 0.0 <= threshold <= 1.0:
        raise ClassificationDataError(f"--threshold {threshold:g} must be in [0, 1]")
    pred = decisions(table, threshold)
    point = point_metrics(table.truth, table.scores, pred, table.single)
    rng = np.random.default_rng(seed)
    n = len(table.cases)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        boots.append(point_metrics(table.truth[idx], table.scores[idx], pred[idx], table.single))

    def with_ci(m: dict, pick) -> dict:
        out = {k: m[k] for k in METRICS}
        out["ci95"] = {k: (_interval([pick(b)[k] for b in boots], level) if m[k] is not None else None)
                       for k in METRICS}
        return out

    classes = {}
    for j, name in enumerate(table.classes):
        d = with_ci(point["per_class"][j], lambda b, j=j: b["per_class"][j])
        d["support"] = int(table.truth[:, j].sum())
        classes[name] = d
    return {
        "note": NOT_VALIDATION, "task": "classification",
        "mode": "single-label (top class)" if table.single else f"multi-label (probability >= {threshold:g})",
        "threshold": None if table.single else threshold, "n_cases": n, "bootstrap": n_boot,
        "classes": classes,
        "macro": with_ci(point["macro"], lambda b: b["macro"]),
        "micro": with_ci(point["micro"], lambda b: b["micro"]),
        "accuracy": point["accuracy"],
        "accuracy_ci95": _interval([b["accuracy"] for b in boots], level),
        "confusion": {"classes": table.classes, "matrix": confusion(table, pred),
                      "layout": "rows reference, columns prediction" if table.single
                      else "per class [[TN, FP], [FN, TP]]"},
    }


# --- plots ------------------------------------------------------------------------------------------------------
def write_plots(table: Table, result: dict, folder: str) -> list[str]:
    """``roc.png`` (a curve per class and the micro average) and ``confusion.png`` in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ClassificationDataError(f"--plots {folder}: cannot make the folder: {exc.strerror or exc}") from None
    written = []
    fig, ax = plt.subplots(figsize=(6, 6))
    for j, name in enumerate(table.classes):
        auc = result["classes"][name]["auc"]
        if auc is None:
            continue
        fpr, tpr = roc_curve(table.truth[:, j], table.scores[:, j])
        ax.plot(fpr, tpr, label=f"{name} (AUC {auc:.3f})")
    if result["micro"]["auc"] is not None:
        fpr, tpr = roc_curve(table.truth.ravel(), table.scores.ravel())
        ax.plot(fpr, tpr, "k--", label=f"micro (AUC {result['micro']['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    path = os.path.join(folder, "roc.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    matrix = result["confusion"]["matrix"]
    if table.single:
        fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(table.classes), 1.0 + 0.8 * len(table.classes)))
        _matrix(ax, np.array(matrix), table.classes, table.classes)
        ax.set(xlabel="prediction", ylabel="reference")
    else:
        k = len(table.classes)
        cols = min(k, 4)
        rows = (k + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows), squeeze=False)
        for j, ax in enumerate(axes.ravel()):
            if j >= k:
                ax.axis("off")
                continue
            _matrix(ax, np.array(matrix[j]), ["0", "1"], ["0", "1"])
            ax.set_title(table.classes[j], fontsize=9)
    fig.tight_layout()
    path = os.path.join(folder, "confusion.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    return written


def _matrix(ax, m: np.ndarray, rows: list[str], cols: list[str]) -> None:
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                color="white" if v > m.max() / 2 else "black")
