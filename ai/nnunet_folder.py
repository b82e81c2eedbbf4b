"""A trained nnU-Net v2 results folder as a radview model (reads JSON only: no torch, no nnunetv2 here).

nnU-Net v2 writes one folder per trained model, named ``<Trainer>__<Plans>__<configuration>``::

    Dataset001_Lungs/nnUNetTrainer__nnUNetPlans__3d_fullres/
        dataset.json      labels, input channels
        plans.json        spacing, patch size, normalisation, network architecture
        fold_0/checkpoint_final.pth   (or checkpoint_best.pth; fold_all/ for a model trained on all cases)
        fold_1/...

:func:`manifest_from_folder` describes such a folder as a :class:`~ai.manifest.ModelManifest` that runs
through :class:`ai.runners.nnunet.NnUNetModel` (nnunetv2's own predictor, weights loaded safely).

Security rule: the folder is untrusted input; ``dataset.json``, ``plans.json`` and the checkpoints must not be
symlinks that lead outside it (:mod:`ai.model_paths`), checked before any of them is opened.
"""
from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Optional

from ai.manifest import ManifestError, ModelManifest, parse_manifest
from ai.model_paths import check_inside

RUNNER = "nnunet"  # ai.runners.nnunet.NnUNetModel (see ai.runner_names)
METHOD = "learned network (nnU-Net v2)"
CHECKPOINTS = ("checkpoint_final.pth", "checkpoint_best.pth")
DEFAULT_TRAINER = "nnUNetTrainer"
DEFAULT_PLANS = "nnUNetPlans"
DEFAULT_STEP = 0.5
_FOLD = re.compile(r"^fold_(\d+|all)$")
_NOT_ID = re.compile(r"[^A-Za-z0-9._-]+")
_MR_WORDS = ("MR", "MRI", "T1", "T2", "FLAIR", "ADC", "DWI", "PD", "SWI", "T1W", "T2W", "T1C", "T1CE", "T1GD")


def _error(message: str) -> Exception:
    return ManifestError(message)


def split_folder_name(name: str) -> Optional[tuple[str, str, str]]:
    """``(trainer, plans, configuration)`` of a ``Trainer__Plans__configuration`` folder name, else None."""
    parts = name.split("__")
    if len(parts) != 3 or not all(p.strip() for p in parts):
        return None
    return parts[0], parts[1], parts[2]


def available_folds(path: str | os.PathLike, checkpoint: str) -> list:
    """The folds (ints, then ``"all"``) whose ``fold_X/<checkpoint>`` exists."""
    folds: list = []
    try:
        entries = list(Path(path).iterdir())
    except OSError:
        return []
    for entry in entries:
        m = _FOLD.match(entry.name)
        if m and (entry / checkpoint).is_file():
            folds.append("all" if m.group(1) == "all" else int(m.group(1)))
    return sorted((f for f in folds if f != "all")) + (["all"] if "all" in folds else [])


def default_checkpoint(path: str | os.PathLike) -> Optional[str]:
    """``checkpoint_final.pth`` if some fold has it, else ``checkpoint_best.pth``, else None."""
    for name in CHECKPOINTS:
        if available_folds(path, name):
            return name
    return None


def is_nnunet_folder(path: str | os.PathLike) -> bool:
    """A trained nnU-Net v2 results folder: ``Trainer__Plans__configuration`` with dataset.json, plans.json
    and at least one ``fold_N/checkpoint_final.pth`` (or ``checkpoint_best.pth``)."""
    p = Path(path)
    try:
        return (p.is_dir() and split_folder_name(p.name) is not None and (p / "dataset.json").is_file()
                and (p / "plans.json").is_file() and default_checkpoint(p) is not None)
    except OSError:
        return False


def read_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise _error(f"cannot read {path.name}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _error(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _error(f"{path.name} does not hold a JSON object")
    return data


def resolve_configuration(plans: Mapping, name: str) -> dict:
    """A plans.json configuration with its ``inherits_from`` parents merged in (as nnunetv2 does)."""
    configurations = plans.get("configurations")
    if not isinstance(configurations, dict) or not configurations:
        raise _error("plans.json has no configurations")
    chain: list[dict] = []
    current: Optional[str] = name
    while current is not None:
        if current not in configurations:
            known = ", ".join(sorted(configurations))
            raise _error(f"plans.json has no configuration '{current}' (it has {known})")
        if len(chain) > len(configurations):
            raise _error(f"plans.json: configuration '{name}' inherits from itself")
        conf = configurations[current]
        if not isinstance(conf, dict):
            raise _error(f"plans.json: configuration '{current}' is not an object")
        chain.append(conf)
        current = conf.get("inherits_from")
    merged: dict = {}
    for conf in reversed(chain):
        merged.update(conf)
    return merged


def label_map(dataset_json: Mapping) -> dict[int, str]:
    """``{value: name}`` of the foreground labels (background 0 and nnU-Net's ``ignore`` label left out).

    Region-based models (a label given as a list of values) are refused: their outputs overlap, and
    radview shows one label per voxel.
    """
    labels = dataset_json.get("labels")
    if not isinstance(labels, dict) or not labels:
        raise _error("dataset.json has no 'labels' table")
    out: dict[int, str] = {}
    for name, value in labels.items():
        if isinstance(value, (list, tuple)):
            raise _error(f"dataset.json: label '{name}' is a region ({list(value)}); region-based nnU-Net "
                         "models are not supported (their outputs overlap)")
        if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, str) and value.isdigit()):
            raise _error(f"dataset.json: label '{name}' = {value!r} is not an integer")
        value = int(value)
        if value == 0 or str(name).lower() == "ignore":
            continue
        if value < 0 or value > 65535:
            raise _error(f"dataset.json: label '{name}' = {value} is outside 1..65535")
        if value in out:
            raise _error(f"dataset.json: labels '{out[value]}' and '{name}' share the value {value}")
        out[value] = str(name)
    if not out:
        raise _error("dataset.json lists no foreground label")
    if sorted(out) != list(range(1, len(out) + 1)):
        raise _error(f"dataset.json: nnU-Net labels must be consecutive (1..{len(out)}), got {sorted(out)}")
    return dict(sorted(out.items()))


def channel_modality(dataset_json: Mapping, configuration: Mapping) -> tuple[str, str]:
    """``(radview modality, nnU-Net channel name)`` of a one-channel model; more channels are refused."""
    channels = dataset_json.get("channel_names", dataset_json.get("modality"))
    if not isinstance(channels, dict) or not channels:
        raise _error("dataset.json has no 'channel_names'")
    if len(channels) != 1:
        names = ", ".join(f"{k}: {v}" for k, v in channels.items())
        raise _error(f"the model needs {len(channels)} input channels ({names}); radview feeds one series, "
                     "so only one-channel models can run")
    channel = str(next(iter(channels.values()))).strip()
    schemes = configuration.get("normalization_schemes") or []
    word = re.sub(r"[^A-Z0-9]+", " ", channel.upper()).split()
    if channel.upper() == "CT" or (schemes and schemes[0] == "CTNormalization"):
        return "CT", channel
    if any(w in _MR_WORDS for w in word):
        return "MR", channel
    if any(w in ("PET", "PT") for w in word):
        return "PT", channel
    return channel.upper() or "CT", channel


def _untranspose(values, transpose_forward) -> list:
    """nnU-Net stores spacing/patch size in its transposed axis order; back to the image's (z, y, x)."""
    out = [None] * len(values)
    for i, axis in enumerate(transpose_forward):
        out[axis] = values[i]
    return out


def describe_normalization(plans: Mapping, configuration: Mapping) -> str:
    schemes = configuration.get("normalization_schemes") or []
    scheme = str(schemes[0]) if schemes else "unknown"
    props = (plans.get("foreground_intensity_properties_per_channel")
             or plans.get("foreground_intensity_properties_by_modality") or {})
    props = props.get("0", props.get(0, {})) if isinstance(props, dict) else {}
    if scheme == "CTNormalization" and all(k in props for k in ("percentile_00_5", "percentile_99_5", "mean", "std")):
        lo, hi = props["percentile_00_5"], props["percentile_99_5"]
        return (f"nnU-Net CT normalisation: clip to [{lo:.0f}, {hi:.0f}] HU, "
                f"then (HU - {props['mean']:.1f}) / {props['std']:.1f}")
    if scheme == "ZScoreNormalization":
        return "nnU-Net z-score normalisation (per image)"
    return f"nnU-Net {scheme}"


def safe_id(text: str) -> str:
    """Letters, digits, '.', '_' and '-' only, starting with a letter or digit."""
    return _NOT_ID.sub("-", text).strip("-._") or "model"


def _version(folder: Path, dataset_json: Mapping, checkpoint: str, folds: list) -> str:
    for key in ("release", "version"):
        if str(dataset_json.get(key) or "").strip():
            return str(dataset_json[key]).strip()
    try:
        stamp = (folder / f"fold_{folds[0]}" / checkpoint).stat().st_mtime
        day = datetime.fromtimestamp(stamp, tz=timezone.utc).strftime("%Y-%m-%d")
    except (OSError, IndexError):
        day = "undated"
    return f"{checkpoint.removeprefix('checkpoint_').removesuffix('.pth')} checkpoint of {day}"


def manifest_from_folder(path: str | os.PathLike, *, model_id: Optional[str] = None, name: Optional[str] = None,
                         version: Optional[str] = None, description: Optional[str] = None,
                         labels: Optional[Mapping[int, str]] = None, runner: str = RUNNER,
                         parameters: Optional[Mapping[str, Any]] = None) -> ModelManifest:
    """The :class:`~ai.manifest.ModelManifest` of an nnU-Net v2 results folder; ManifestError says why not.

    The keyword arguments override what the folder says (TotalSegmentator tasks use them).
    """
    folder = Path(path).resolve()
    parts = split_folder_name(folder.name)
    if not folder.is_dir() or parts is None:
        raise _error(f"{folder.name} is not an nnU-Net results folder (its name must look like "
                     "Trainer__Plans__configuration)")
    trainer, plans_name, configuration_name = parts
    checkpoint = default_checkpoint(folder)
    if checkpoint is None:
        raise _error("no fold_N/checkpoint_final.pth or checkpoint_best.pth in the folder")
    folds = available_folds(folder, checkpoint)
    check_inside(folder, ["dataset.json", "plans.json"] + [f"fold_{f}/{checkpoint}" for f in folds], ManifestError)
    dataset_json = read_json(folder / "dataset.json")
    plans = read_json(folder / "plans.json")
    configuration = resolve_configuration(plans, configuration_name)
    if configuration.get("previous_stage"):
        raise _error(f"configuration '{configuration_name}' is a cascade stage: it needs the output of "
                     f"'{configuration['previous_stage']}' as a second input, which radview does not run")
    modality, channel = channel_modality(dataset_json, configuration)
    found_labels = label_map(dataset_json)
    transpose = plans.get("transpose_forward", [0, 1, 2])
    if sorted(transpose) != [0, 1, 2]:
        raise _error(f"plans.json: transpose_forward {transpose!r} is not a permutation of (0, 1, 2)")
    inp: dict[str, Any] = {"overlap": 1.0 - DEFAULT_STEP,
                           "intensity": describe_normalization(plans, configuration)}
    spacing = configuration.get("spacing")
    patch = configuration.get("patch_size")
    if isinstance(spacing, list) and len(spacing) == 3:
        inp["spacing_mm"] = [float(v) for v in _untranspose(spacing, transpose)]
    if isinstance(patch, list) and len(patch) in (2, 3):
        inp["patch_size"] = [int(v) for v in _untranspose(([1] if len(patch) == 2 else []) + list(patch), transpose)]
    dataset_name = str(plans.get("dataset_name") or dataset_json.get("name") or folder.parent.name).strip()
    default_id = f"nnunet-{dataset_name}-{configuration_name}"
    if trainer != DEFAULT_TRAINER or plans_name != DEFAULT_PLANS:
        default_id += f"-{trainer}-{plans_name}"
    fold_text = ", ".join(str(f) for f in folds)
    text = (f"nnU-Net v2 model {dataset_name}: configuration {configuration_name}, trainer {trainer}, "
            f"plans {plans_name}, fold(s) {fold_text} ({checkpoint}); input channel '{channel}'. "
            f"Folder: {folder}")
    params: dict[str, Any] = {
        "folder": str(folder), "folds": folds, "use_mirroring": False, "checkpoint": checkpoint,
        "tile_step_size": DEFAULT_STEP, "trainer": trainer, "plans": plans_name,
        "configuration": configuration_name,
    }
    params.update(parameters or {})
    data = {
        "id": safe_id(model_id or default_id),
        "name": name or f"nnU-Net {dataset_name} ({configuration_name})",
        "version": version or _version(folder, dataset_json, checkpoint, folds),
        "modality": modality,
        "method": METHOD,
        "runner": runner,
        "description": description or text,
        "outputs": ["labels"],
        "labels": {str(k): v for k, v in (labels if labels is not None else found_labels).items()},
        "input": inp,
        "device": {"supports": ["cuda", "mps", "cpu"], "mixed_precision": True},  # nnunetv2 autocasts on CUDA
        "parameters": params,
    }
    return parse_manifest(data, path=str(folder))
