"""``radview-cli ai train``: a short training lowers the loss and beats the untrained network, and its model folder
loads through the registry and runs like any user model (``ai run --model-dir``, the engine, Run AI's listing).

Tiny phantoms (24 x 40 x 40 voxels of 14 x 10 x 10 mm) and a tiny U-Net, so each training takes seconds.
"""
from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training_cases import SMALL_SHAPE, SMALL_SPACING, write_case, write_dataset  # noqa: E402

from ai.api import InferenceRequest  # noqa: E402
from ai.engine import Engine  # noqa: E402
from ai.registry import Registry  # noqa: E402
from ai.training.settings import TrainSettings  # noqa: E402
from ai.training.trainer import TrainingError, train  # noqa: E402
from radview_base.geometry import Geometry  # noqa: E402
from viewer.cli.main import main  # noqa: E402
from viewer.demo.phantom import make_phantom  # noqa: E402

TINY = {"features": (4, 8), "patch_size": (16, 24, 24), "spacing_mm": SMALL_SPACING, "steps_per_epoch": 25,
        "labels": ("lung_left", "lung_right"), "threads": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = write_dataset(root / "data", [11, 12, 13, 14])
    out = root / "models" / "tiny-lungs"
    threads = torch.get_num_threads()
    outcome = train(TrainSettings(data=str(data), out=str(out), epochs=2, **TINY))
    assert torch.get_num_threads() == threads  # the run's own thread count ends with it
    return data, out, outcome


def test_a_short_training_lowers_the_loss_and_beats_the_untrained_network(trained):
    _, out, outcome = trained
    losses = [v for _, v in outcome.history["loss"]]
    assert len(losses) == outcome.steps == 50 and outcome.stopped == "epochs"
    assert statistics.mean(losses[-10:]) < statistics.mean(losses[:10]) - 0.1
    assert outcome.best_dice["mean"] > outcome.untrained_dice["mean"] + 0.15
    assert outcome.samples_per_s > 0
    record = json.loads((out / "report" / "training.json").read_text())
    assert record["data_hash"].startswith("sha256:") and record["parameters"]["labels"] == ["lung_left", "lung_right"]
    assert record["history"]["validation"][0]["step"] == 0  # the untrained network, measured first
    rows = (out / "report" / "validation.csv").read_text().splitlines()
    assert rows[0] == "case,label,dice,reference_ml,predicted_ml" and len(rows) == 1 + 2  # one case, two labels
    assert (out / "report" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_model_folder_is_listed_by_the_registry_and_runs_through_the_engine(trained):
    data, out, outcome = trained
    registry = Registry(extra_dirs=[str(out.parent)], builtin=False)
    assert registry.problems == []
    manifest = registry.get("tiny-lungs")
    assert dict(manifest.labels) == {2: "lung_left", 3: "lung_right"}  # the dataset's own ids
    assert manifest.network.format == "safetensors" and manifest.network.architecture == "unet3d"
    assert manifest.parameters["training_data"] == json.loads((out / "report" / "training.json").read_text())[
        "data_hash"]
    p = make_phantom(99, shape_zyx=SMALL_SHAPE, spacing_zyx=SMALL_SPACING)  # a seed it never saw
    grid = Geometry(p.grid.shape_zyx, p.grid.spacing_zyx, p.grid.origin_lps)
    result = Engine(registry).run(InferenceRequest(array=p.hu_zyx, grid=grid, model_id="tiny-lungs", device="cpu"))
    assert result.labels.shape == p.hu_zyx.shape
    assert set(np.unique(result.labels)) <= {0, 2, 3}
    assert result.provenance.parameters["training_run"] == outcome.run_id
    assert result.provenance.parameters["training_data"].startswith("sha256:")


def test_ai_run_with_the_model_dir_writes_labels_that_ai_eval_reads(trained, tmp_path, capsys):
    _, out, _ = trained
    case = write_case(tmp_path / "unseen", 98)
    assert main(["ai", "run", str(case / "image.nii.gz"), "--model-dir", str(out), "--out", str(tmp_path / "pred"),
                 "--device", "cpu"]) == 0
    findings = json.loads((tmp_path / "pred" / "findings.json").read_text())
    assert findings["provenance"]["parameters"]["training_data"].startswith("sha256:")
    capsys.readouterr()
    assert main(["ai", "eval", "--pred", str(tmp_path / "pred" / "labels.nii.gz"), "--ref",
                 str(case / "truth" / "labels.nii.gz"), "--json"]) == 0
    metrics = {m["name"]: m for m in json.loads(capsys.readouterr().out)["labels"]}
    assert metrics["lung_left"]["dice"] > 0.1 and metrics["lung_right"]["label"] == 3


def test_init_fine_tunes_a_model_folder_and_says_so(trained, tmp_path):
    data, out, _ = trained
    tuned = tmp_path / "tuned"
    outcome = train(TrainSettings(data=str(data), out=str(tuned), init=str(out), epochs=1,
                                  **{k: v for k, v in TINY.items() if k not in ("features", "patch_size",
                                                                                "spacing_mm")}))
    assert outcome.untrained_dice["mean"] > 0.15  # it starts from the trained weights, not from scratch
    text = (tuned / "model.toml").read_text()
    assert "fine_tuned_from = \"tiny-lungs (sha256:" in text and "fine-tuned from tiny-lungs" in text


def test_a_checkpoint_of_other_parameters_is_not_resumed_silently(trained, capsys):
    data, out, _ = trained
    other = TrainSettings(data=str(data), out=str(out), epochs=6, **{**TINY, "learning_rate": 1e-3})
    with pytest.raises(TrainingError, match="holds a checkpoint of another training.*--restart"):
        train(other)
    assert main(["ai", "train", "--data", str(data), "--out", str(out), "--epochs", "6", "--lr", "1e-3",
                 "--labels", "lung_left,lung_right", "--features", "4,8", "--patch", "16,24,24",
                 "--spacing", "14,10,10", "--steps-per-epoch", "25"]) != 0
    assert "another training" in capsys.readouterr().err


def test_augmentation_never_mirrors_left_and_right_when_a_label_is_lateral():
    from ai.runners.model_grid import ModelGrid
    from ai.training.augment import Augmentation, extract, mirror_axes
    from ai.training.prepared import PreparedCase

    assert mirror_axes(lateral=True) == (0, 1) and mirror_axes(lateral=False) == (0, 1, 2)
    shape = (8, 10, 12)
    ramp = torch.arange(np.prod(shape), dtype=torch.float32).reshape(shape)
    labels = torch.zeros(shape, dtype=torch.uint8)
    labels[:, :, 6:] = 2  # patient's left half (LPS: +x is left)
    grid = ModelGrid.plan(shape, (1.0, 1.0, 1.0), np.eye(3), "LPS", None)
    case = PreparedCase("c", ramp[None], labels, [torch.tensor([]), torch.tensor([1])], 0.0, grid)
    gen = torch.Generator().manual_seed(0)
    aug = Augmentation(p_spatial=0.0, p_intensity=0.0, mirror=mirror_axes(True), p_mirror=1.0)
    image, lab = extract(case, (4, 5, 6), shape, aug, gen)
    assert torch.allclose(image[0], torch.flip(ramp, [0, 1]), atol=1e-3)  # mirrored head-feet and front-back ...
    assert torch.equal(lab, labels.to(torch.int64))  # ... but the left stays left
    plain, _ = extract(case, (4, 5, 6), shape, None, gen)
    assert torch.allclose(plain[0], ramp, atol=1e-3)  # no augmentation: the voxels themselves
