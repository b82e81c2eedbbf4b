"""The trained model as a model folder: ``model.safetensors`` + ``model.toml`` (see :mod:`ai.network_spec`).

The manifest is the one the learned-model runner (:class:`ai.runners.network.NetworkModel`) loads: the U-Net's
arguments, the model grid (spacing, LPS orientation), the patch, the normalisation, the labels (channel i is
label i). Its ``[parameters]`` name the training data (hash), the run and the cases, so every result the model
makes carries them in its provenance. The weights are written first, the manifest last, each atomically: a
folder with a ``model.toml`` is complete, and the registry lists it at once.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ai.training.dataset import Dataset
from ai.training.plan import ORIENTATION, Plan
from radview_base.atomic_file import atomic_path, atomic_write_bytes

WEIGHTS = "model.safetensors"
MANIFEST = "model.toml"


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(float(v)) if isinstance(v, float) else str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    return json.dumps(str(v), ensure_ascii=False)  # a TOML basic string is a JSON string


def _table(name: str, items: Mapping[str, Any]) -> str:
    lines = [f"[{name}]"] if name else []
    for k, v in items.items():
        key = k if str(k).replace("_", "").replace("-", "").isalnum() else json.dumps(str(k))
        lines.append(f"{key} = {_value(v)}")
    return "\n".join(lines) + "\n"


def manifest_text(top: Mapping[str, Any], labels: Mapping[int, str], inp: Mapping[str, Any],
                  normalization: Mapping[str, Any], network: Mapping[str, Any], args: Mapping[str, Any],
                  parameters: Mapping[str, Any]) -> str:
    parts = ["# written by radview-cli ai train\n" + _table("", top), _table("labels", {str(k): v for k, v in
                                                                                        sorted(labels.items())}),
             _table("input", inp), _table("input.normalization", normalization), _table("network", network),
             _table("network.args", args), _table("parameters", parameters)]
    return "\n".join(parts)


def trained_manifest(model_id: str, name: str, run_id: str, dataset: Dataset, plan: Plan, validation_dice: float,
                     steps: int) -> str:
    """The ``model.toml`` of a trained network: the runner's fields, and the training's provenance."""
    top = {"id": model_id, "name": name or f"{model_id} (radview U-Net)", "version": run_id,
           "modality": dataset.modality,
           "description": f"radview's 3D U-Net trained by radview-cli ai train on {len(dataset.training)} case(s) "
                          f"of {dataset.root} ({dataset.data_hash[:19]}…), run {run_id}"
                          + (f", fine-tuned from {plan.init_id}" if plan.init_id else "")
                          + "; research use, not a diagnosis"}
    inp = {"spacing_mm": list(plan.spacing_mm), "orientation": ORIENTATION, "channels": 1,
           "patch_size": list(plan.patch_size), "overlap": 0.5}
    network = {"format": "safetensors", "file": WEIGHTS, "architecture": "unet3d", "output": "logits",
               "resample_back": "probabilities"}
    args = {"in_channels": 1, "out_channels": max(plan.label_ids) + 1, "features": list(plan.features)}
    parameters = {"training_data": dataset.data_hash, "training_run": run_id,
                  "training_cases": list(dataset.training), "validation_cases": list(dataset.validation),
                  "validation_dice": round(validation_dice, 4), "training_steps": steps}
    if plan.init_id:
        parameters["fine_tuned_from"] = f"{plan.init_id} ({plan.init_hash[:19]}…)"
    return manifest_text(top, dict(zip(plan.label_ids, plan.labels)), inp, plan.normalization, network, args,
                         parameters)


def write_model_folder(out: str | os.PathLike, state: Mapping[str, torch.Tensor], toml_text: str) -> list[str]:
    from safetensors.torch import save_file

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
    atomic_write_bytes(folder / MANIFEST, toml_text)
    return [WEIGHTS, MANIFEST]
