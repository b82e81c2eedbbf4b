"""The plan of a training: what is learned and on which grid, from the options, an ``--init`` model and the data.

Labels (and their output ids) come from the dataset; the network's level widths, the model grid's spacing, the
patch and the normalisation come, in order, from the options, the ``--init`` model folder (fine-tuning keeps its
grid and normalisation), ``dataset.toml``'s ``[training]`` table, and defaults: the data's median spacing, the
median extent capped at 64 x 128 x 128 voxels and rounded to the U-Net's pooling, CT clipped to [-1000, 1000] HU
(z-score for other modalities). The model grid is always LPS, so left-right is numpy axis 2
(:mod:`ai.training.augment`).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Optional

import torch

from ai.api import ModelError
from ai.network_spec import Normalization
from ai.training.dataset import Dataset, hash_files
from ai.training.settings import TrainingError, TrainSettings

DEFAULT_FEATURES = (16, 32, 64, 128)
MAX_PATCH = (64, 128, 128)
CT_NORMALIZATION = {"kind": "ct", "clip": [-1000.0, 1000.0], "mean": 0.0, "std": 500.0}
ORIENTATION = "LPS"
#: the logit of an output channel no label uses (an id between the labels' ids): it never wins an argmax
UNUSED_LOGIT = -1.0e4


@dataclass
class Plan:
    labels: tuple[str, ...]
    label_ids: tuple[int, ...]
    spacing_mm: tuple[float, float, float]
    patch_size: tuple[int, int, int]
    features: tuple[int, ...]
    normalization: dict
    init_hash: str = ""
    init_state: Optional[dict] = None
    init_id: str = ""

    def parameters(self, settings: TrainSettings) -> dict:
        return {**settings.key_parameters(), "labels": list(self.labels), "label_ids": list(self.label_ids),
                "spacing_mm": list(self.spacing_mm),
                "patch_size": list(self.patch_size), "features": list(self.features),
                "normalization": dict(self.normalization), "orientation": ORIENTATION}


def _init_model(path: str):
    from ai.registry import ManifestError, load_model_folder
    from ai.runners import safe_load

    try:
        manifest = load_model_folder(path)
    except ManifestError as exc:
        raise TrainingError(f"--init {path}: {exc}") from None
    spec = manifest.network
    if spec is None or spec.format not in ("safetensors", "checkpoint") or spec.architecture != "unet3d":
        raise TrainingError(f"--init {path}: only radview's own U-Net (architecture = \"unet3d\", safetensors or a "
                            "state_dict) can be fine-tuned")
    try:
        state = safe_load.load_state_dict(spec.file)
    except ModelError as exc:
        raise TrainingError(f"--init {path}: {exc}") from None
    return manifest, state, hash_files([spec.file], str(manifest.folder))


def _divisor(features) -> int:
    return 2 ** (len(features) - 1)


def make_plan(settings: TrainSettings, dataset: Dataset, geometries) -> Plan:
    extra = dict(dataset.settings)
    init = _init_model(settings.init) if settings.init else None
    manifest = init[0] if init else None
    features = tuple(settings.features or (manifest.network.args.get("features") if manifest else None)
                     or extra.get("features") or DEFAULT_FEATURES)
    spacing = settings.spacing_mm or (manifest.spacing_mm if manifest else None) or extra.get("spacing_mm")
    if spacing is None:
        spacing = tuple(statistics.median(g.spacing_zyx[a] for g in geometries) for a in range(3))
    spacing = tuple(float(s) for s in spacing)
    patch = settings.patch_size or (manifest.patch_size if manifest else None) or extra.get("patch_size")
    d = _divisor(features)
    if patch is None:
        extent = [statistics.median(g.shape_zyx[a] * g.spacing_zyx[a] for g in geometries) / spacing[a]
                  for a in range(3)]
        patch = tuple(max(d, min(m, int(e) // d * d)) for e, m in zip(extent, MAX_PATCH))
    patch = tuple(int(p) for p in patch)
    if any(p % d for p in patch):
        raise TrainingError(f"patch size {' × '.join(map(str, patch))} must be divisible by {d} for a U-Net with "
                            f"{len(features)} levels")
    if manifest is not None:
        n = manifest.network.normalization
        norm = {"kind": n.kind, "mean": n.mean, "std": n.std, "nonzero": n.nonzero}
        if n.clip is not None:
            norm["clip"] = list(n.clip)
    elif dataset.modality == "CT":
        norm = dict(CT_NORMALIZATION)
    else:
        norm = {"kind": "zscore", "mean": 0.0, "std": 1.0}
    return Plan(dataset.labels, dataset.label_ids, spacing, patch, features, norm, init_hash=init[2] if init else "",
                init_state=init[1] if init else None, init_id=manifest.id if manifest else "")


def normalization(d: dict) -> Normalization:
    clip = tuple(d["clip"]) if d.get("clip") else None
    return Normalization(kind=d["kind"], clip=clip, mean=float(d.get("mean", 0.0)), std=float(d.get("std", 1.0)),
                         nonzero=bool(d.get("nonzero", False)))


def silence_unused(net, label_ids) -> None:
    """Output channels that no label uses answer ``UNUSED_LOGIT`` everywhere (zero weights): never a stray label."""
    unused = [c for c in range(1, net.out_channels) if c not in set(label_ids)]
    if unused:
        with torch.no_grad():
            net.head.weight[unused] = 0.0
            net.head.bias[unused] = UNUSED_LOGIT


def build_network(plan: Plan, seed: int) -> tuple[torch.nn.Module, list[str]]:
    from ai.runners.architectures import UNet3D

    torch.manual_seed(seed)
    net = UNet3D(1, max(plan.label_ids) + 1, features=plan.features)
    notes = []
    if plan.init_state is not None:
        own = net.state_dict()
        fitting = {k: v for k, v in plan.init_state.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(set(own) - set(fitting))
        own.update(fitting)
        net.load_state_dict(own)
        if len(fitting) == 0:
            raise TrainingError("--init: none of its weights fit this U-Net (other features?)")
        if skipped:
            notes.append(f"--init: {len(skipped)} tensor(s) started afresh ({', '.join(skipped[:4])}"
                         f"{', ...' if len(skipped) > 4 else ''}): the labels differ")
    silence_unused(net, plan.label_ids)
    return net, notes
