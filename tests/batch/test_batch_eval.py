"""``radview-cli batch eval``: per case exactly what ``ai eval`` says; over the dataset means, medians and 95 %
bootstrap intervals that contain their means; pooled detection figures; the files and plots."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.cli.main import main
from viewer.io.image_io import write_image
from viewer.io.volume import LabelMap

NAMES = {1: "lung_left", 2: "lung_right", 3: "nodule"}


def _ball(shape, centre, radius, spacing):
    zz, yy, xx = np.ogrid[tuple(slice(0, n) for n in shape)]
    return ((zz - centre[0]) * spacing[0]) ** 2 + ((yy - centre[1]) * spacing[1]) ** 2 + \
        ((xx - centre[2]) * spacing[2]) ** 2 <= radius ** 2


def _case(folder: Path, labels: np.ndarray, geometry: Geometry, uid: str | None, detections=None,
          nodules=None) -> None:
    folder.mkdir(parents=True)
    write_image(LabelMap(labels, geometry, NAMES), str(folder / "labels.nii.gz"))
    (folder / "labels.json").write_text(json.dumps({str(k): v for k, v in NAMES.items()}))
    if detections is not None:
        (folder / "findings.json").write_text(json.dumps({"input": {"series_uid": uid}, "detections": detections}))
    if nodules is not None:
        (folder / "nodules.json").write_text(json.dumps(nodules))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """5 cases: references with two lungs and a nodule; predictions shifted, grown, one missing a lung."""
    root = tmp_path_factory.mktemp("batch-eval")
    rng = np.random.default_rng(7)
    shape, spacing = (24, 40, 40), (2.5, 1.5, 1.5)
    geometry = Geometry(shape_zyx=shape, spacing_zyx=spacing, origin_lps=(-30.0, -30.0, -40.0),
                        direction=np.eye(3))
    uids = [f"1.2.826.0.1.3680043.8.498.{1000 + i}" for i in range(5)]
    for i, uid in enumerate(uids):
        ref = np.zeros(shape, np.uint8)
        ref[_ball(shape, (12, 20, 10), 11, spacing)] = 1
        ref[_ball(shape, (12, 20, 29), 11 + i, spacing)] = 2
        ref[_ball(shape, (10, 12, 20), 4, spacing)] = 3
        shift = rng.integers(-2, 3, size=3)
        pred = np.roll(ref, tuple(int(s) for s in shift), axis=(0, 1, 2))
        if i == 3:
            pred[pred == 2] = 0  # a missed lung: Dice 0, no distance
        nodule_centre = [float(v) for v in geometry.index_to_world((10, 12, 20))]
        hit = [c + 1.0 for c in nodule_centre]
        far = [c + 25.0 for c in nodule_centre]
        dets = [{"center_lps_mm": hit, "diameter_mm": 6.0, "score": 0.9}] if i % 2 == 0 else []
        dets += [{"center_lps_mm": far, "diameter_mm": 5.0, "score": 0.3 + 0.1 * i}]
        _case(root / "pred" / uid, pred, geometry, uid, detections=dets)
        _case(root / "ref" / uid, ref, geometry, None, nodules=[{"center_lps_mm": nodule_centre, "diameter_mm": 8.0}])
    _case(root / "pred" / "9.9.9", ref, geometry, "9.9.9", detections=[])  # no reference for it
    return root, uids


def _ai_eval(capsys, pred: Path, ref: Path) -> dict:
    code = main(["ai", "eval", "--pred", str(pred / "labels.nii.gz"), "--ref", str(ref / "labels.nii.gz"),
                 "--pred-findings", str(pred / "findings.json"), "--ref-findings", str(ref / "nodules.json"), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def _cases_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _same(csv_value: str, value) -> bool:
    if value is None:
        return csv_value == ""
    if isinstance(value, float):
        return math.isclose(float(csv_value), value, rel_tol=1e-12, abs_tol=1e-12)
    return csv_value == str(value)


def test_batch_eval_equals_ai_eval_case_by_case(dataset, tmp_path, capsys):
    root, uids = dataset
    out = tmp_path / "eval"
    assert main(["batch", "eval", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "5 case(s) evaluated; unpaired: 1 prediction(s), 0 reference(s)" in printed
    rows = _cases_csv(out / "cases.csv")
    assert {r["case"] for r in rows} == set(uids)
    for uid in uids:
        single = _ai_eval(capsys, root / "pred" / uid, root / "ref" / uid)
        mine = {r["name"]: r for r in rows if r["case"] == uid}
        assert set(mine) == {m["name"] for m in single["labels"]} | {"detection"}
        for m in single["labels"]:
            for key in ("label", "dice", "iou", "hd95_mm", "asd_mm", "hd_mm", "volume_pred_ml", "volume_ref_ml",
                        "volume_diff_pct", "note"):
                assert _same(mine[m["name"]][key], m[key]), (uid, m["name"], key, mine[m["name"]][key], m[key])
        d = single["detection"]
        for key in ("tp", "fp", "fn", "precision", "recall", "f1", "n_detections", "n_references"):
            assert _same(mine["detection"][key], d[key]), (uid, key)


def test_dataset_figures_intervals_and_files(dataset, tmp_path, capsys):
    root, uids = dataset
    out = tmp_path / "eval"
    assert main(["batch", "eval", "--pred", str(root / "pred"), "--ref", str(root / "ref"), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = _cases_csv(out / "cases.csv")
    assert summary["n_cases"] == 5 and set(summary["labels"]) == set(NAMES.values())
    for name, figures in summary["labels"].items():
        dice = [float(r["dice"]) for r in rows if r["name"] == name]
        assert figures["dice"]["mean"] == pytest.approx(np.mean(dice))
        assert figures["dice"]["median"] == pytest.approx(np.median(dice))
        for metric in ("dice", "hd95"):
            low, high = figures[metric]["ci95"]
            assert low <= figures[metric]["mean"] <= high, (name, metric)
    right = summary["labels"]["lung_right"]
    assert right["dice"]["n"] == 5 and right["hd95"]["n"] == 4  # the missed lung has no distance
    assert right["dice"]["ci95"][0] < right["dice"]["ci95"][1]
    det = summary["detection"]
    per_case = [r for r in rows if r["name"] == "detection"]
    assert det["tp"] == sum(int(r["tp"]) for r in per_case) == 3
    assert det["fp"] == sum(int(r["fp"]) for r in per_case) == 5 and det["fn"] == 2
    assert det["precision"] == pytest.approx(3 / 8) and det["recall"] == pytest.approx(3 / 5)
    assert det["froc"]["n_scans"] == 5 and det["froc"]["n_references"] == 5
    md = (out / "summary.md").read_text()
    assert "| lung_left | 5 |" in md and "FROC sensitivity" in md
    for png in ("dice_per_case.png", "froc.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_pairs_from_a_csv_with_relative_paths(dataset, tmp_path, capsys):
    root, uids = dataset
    pairs = root / "pairs.csv"
    pairs.write_text("pred,ref\n" + "".join(f"pred/{u},{root / 'ref' / u}\n" for u in uids[:3]))
    out = tmp_path / "eval"
    assert main(["batch", "eval", "--pairs", str(pairs), "--out", str(out), "--no-plots"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_cases"] == 3 and not (out / "froc.png").exists()
    pairs.write_text("pred,ref\npred/nowhere,ref/nowhere\n")
    assert main(["batch", "eval", "--pairs", str(pairs), "--out", str(tmp_path / "e2")]) == 0
    assert json.loads((tmp_path / "e2" / "summary.json").read_text())["failed_cases"][0]["error"]
    capsys.readouterr()
