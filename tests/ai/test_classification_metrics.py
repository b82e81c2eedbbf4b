"""``ai eval --task classification``: metrics equal scikit-learn's; intervals; bad CSVs refused in one line."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from viewer.logic import classification_metrics as cm

sk = pytest.importorskip("sklearn.metrics")
ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["effusion", "nodule", "pneumothorax"]


def _write(path: Path, header, rows) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def multi_label(tmp_path: Path, n=150, seed=1):
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, 3)) < [0.3, 0.5, 0.2]).astype(int)
    scores = np.clip(0.35 * truth + rng.random((n, 3)) * 0.7, 0, 1).round(3)  # ties on purpose
    pred = _write(tmp_path / "pred.csv", ["case", *CLASSES], [[f"c{i}", *s] for i, s in enumerate(scores)])
    ref = _write(tmp_path / "ref.csv", ["case", *CLASSES], [[f"c{i}", *t] for i, t in enumerate(truth)][::-1])
    return pred, ref, truth, scores


def single_label(tmp_path: Path, n=160, seed=2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3)) + 1.2 * np.eye(3)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rows = [[f"c{i}", *(repr(float(v)) for v in r)] for i, r in enumerate(p)]
    pred = _write(tmp_path / "pred.csv", ["case", *CLASSES], rows)
    ref = _write(tmp_path / "ref.csv", ["case", "label"], [[f"c{i}", CLASSES[k]] for i, k in enumerate(y)])
    return pred, ref, y, p


def test_multi_label_metrics_equal_scikit_learn(tmp_path):
    pred, ref, truth, scores = multi_label(tmp_path)
    table = cm.read_tables(str(pred), str(ref))
    r = cm.evaluate(table, threshold=0.5, n_boot=200)
    yhat = (scores >= 0.5).astype(int)
    p, rc, f, s = sk.precision_recall_fscore_support(truth, yhat, average=None, zero_division=0)
    for j, c in enumerate(CLASSES):
        m = r["classes"][c]
        assert m["precision"] == pytest.approx(p[j]) and m["recall"] == pytest.approx(rc[j])
        assert m["f1"] == pytest.approx(f[j]) and m["support"] == s[j]
        assert m["auc"] == pytest.approx(sk.roc_auc_score(truth[:, j], scores[:, j]))
        assert m["accuracy"] == pytest.approx(sk.accuracy_score(truth[:, j], yhat[:, j]))
    for avg in ("macro", "micro"):
        p, rc, f, _ = sk.precision_recall_fscore_support(truth, yhat, average=avg, zero_division=0)
        assert (r[avg]["precision"], r[avg]["recall"], r[avg]["f1"]) == pytest.approx((p, rc, f))
        assert r[avg]["auc"] == pytest.approx(sk.roc_auc_score(truth, scores, average=avg))
    assert r["accuracy"] == pytest.approx(sk.accuracy_score(truth, yhat))
    assert r["confusion"]["matrix"] == sk.multilabel_confusion_matrix(truth, yhat).tolist()


def test_single_label_metrics_equal_scikit_learn(tmp_path):
    pred, ref, y, probs = single_label(tmp_path)
    r = cm.evaluate(cm.read_tables(str(pred), str(ref)), n_boot=200)
    yhat = probs.argmax(1)
    p, rc, f, s = sk.precision_recall_fscore_support(y, yhat, labels=[0, 1, 2], average=None, zero_division=0)
    for j, c in enumerate(CLASSES):
        m = r["classes"][c]
        assert (m["precision"], m["recall"], m["f1"], m["support"]) == pytest.approx((p[j], rc[j], f[j], s[j]))
        assert m["auc"] == pytest.approx(sk.roc_auc_score(y == j, probs[:, j]))
    for avg in ("macro", "micro"):
        p, rc, f, _ = sk.precision_recall_fscore_support(y, yhat, average=avg, zero_division=0)
        assert (r[avg]["precision"], r[avg]["recall"], r[avg]["f1"]) == pytest.approx((p, rc, f))
    assert r["macro"]["auc"] == pytest.approx(sk.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    onehot = np.eye(3)[y]
    assert r["micro"]["auc"] == pytest.approx(sk.roc_auc_score(onehot, probs, average="micro"))
    assert r["accuracy"] == pytest.approx(sk.accuracy_score(y, yhat)) == pytest.approx(r["micro"]["accuracy"])
    assert r["confusion"]["matrix"] == sk.confusion_matrix(y, yhat, labels=[0, 1, 2]).tolist()


def test_each_bootstrap_interval_contains_the_point_estimate(tmp_path):
    for make in (multi_label, single_label):
        folder = tmp_path / make.__name__
        folder.mkdir()
        pred, ref, *_ = make(folder)
        r = cm.evaluate(cm.read_tables(str(pred), str(ref)), n_boot=400)
        for m in [*r["classes"].values(), r["macro"], r["micro"]]:
            for k in cm.METRICS:
                if m[k] is not None:
                    lo, hi = m["ci95"][k]
                    assert lo <= m[k] <= hi, (make.__name__, k, lo, m[k], hi)
        lo, hi = r["accuracy_ci95"]
        assert lo <= r["accuracy"] <= hi


def cli(*args):
    return subprocess.run([sys.executable, "-m", "viewer.cli.main", "ai", "eval", "--task", "classification",
                           *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_cli_json_table_and_plots(tmp_path):
    pred, ref, truth, scores = multi_label(tmp_path, n=60)
    out = cli("--pred", pred, "--ref", ref, "--threshold", "0.6", "--json", "--plots", tmp_path / "plots")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert set(r["classes"]) == set(CLASSES)
    assert {"precision", "recall", "f1", "auc", "support"} <= set(r["classes"]["nodule"])
    assert {"precision", "recall", "f1", "auc"} <= set(r["macro"]) and "accuracy" in r
    assert r["threshold"] == 0.6
    for name in ("roc.png", "confusion.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = cli("--pred", pred, "--ref", ref)
    assert text.returncode == 0, text.stderr
    assert "ROC AUC" in text.stdout and "macro" in text.stdout and cm.NOT_VALIDATION in text.stdout


@pytest.mark.parametrize("pred_rows, ref_rows, message", [
    ([["case", "a", "b"], ["1", "0.2", "0.9"]], [["case", "a"], ["1", "1"]], "--pred has class(es) b that --ref lacks"),
    ([["id", "a"], ["1", "0.2"]], [["case", "a"], ["1", "1"]], "no 'case' column"),
    ([["case", "a"], ["1", "1.7"]], [["case", "a"], ["1", "1"]], "is not a probability in [0, 1]"),
    ([["case", "a"], ["1", "x"]], [["case", "a"], ["1", "1"]], "is not a number"),
    ([["case", "a"], ["1", "0.3"]], [["case", "a"], ["1", "2"]], "is not 0 or 1"),
    ([["case", "a"], ["1", "0.3"], ["1", "0.4"]], [["case", "a"], ["1", "1"]], "appears twice"),
    ([["case", "a"], ["1", "0.3"]], [["case", "a"], ["2", "1"]], "do not hold the same cases"),
    ([["case", "a", "b"], ["1", "0.3", "0.7"]], [["case", "label"], ["1", "c"]], "is not one of --pred's classes"),
    ([["case", "a"]], [["case", "a"], ["1", "1"]], "no cases"),
])
def test_bad_csvs_are_refused_in_one_line(tmp_path, pred_rows, ref_rows, message):
    pred = _write(tmp_path / "p.csv", pred_rows[0], pred_rows[1:])
    ref = _write(tmp_path / "r.csv", ref_rows[0], ref_rows[1:])
    with pytest.raises(cm.ClassificationDataError, match=None) as exc:
        cm.evaluate(cm.read_tables(str(pred), str(ref)))
    assert message in str(exc.value) and "\n" not in str(exc.value)
    out = cli("--pred", pred, "--ref", ref)
    assert out.returncode != 0 and message in out.stderr
    assert len([ln for ln in out.stderr.splitlines() if ln.strip()]) == 1
    assert "Traceback" not in out.stderr


def test_missing_file_and_missing_ref(tmp_path):
    out = cli("--pred", tmp_path / "none.csv", "--ref", tmp_path / "none.csv")
    assert out.returncode != 0 and "no such file" in out.stderr
    out = cli("--pred", tmp_path / "none.csv")
    assert out.returncode != 0 and "needs --pred PRED.csv and --ref REF.csv" in out.stderr
