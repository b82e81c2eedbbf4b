"""Write a tiny, real nnU-Net v2 results folder (dataset.json, plans.json, fold_N/checkpoint_final.pth).

The plans follow nnunetv2's own layout (a 3d_fullres configuration with a 3-stage PlainConvUNet); the network
is built by nnunetv2 from those plans, initialised with a fixed seed per fold, and saved in nnU-Net's checkpoint
layout (network_weights, optimizer_state, logging with numpy numbers, init_args with a torch.device, ...).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

LABELS = {"background": 0, "lung": 1, "vessel": 2}
INTENSITY = {"max": 1600.0, "mean": -300.0, "median": -350.0, "min": -1024.0, "percentile_00_5": -1000.0,
             "percentile_99_5": 900.0, "std": 400.0}


def plans_json(dataset: str, plans_name: str = "nnUNetPlans", configuration: str = "3d_fullres",
               spacing: Sequence[float] = (2.0, 1.0, 1.0), patch: Sequence[int] = (16, 32, 32),
               transpose: Sequence[int] = (0, 1, 2), reader: str = "SimpleITKIO",
               normalization: str = "CTNormalization") -> dict:
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {
            "n_stages": 3, "features_per_stage": [4, 8, 16], "conv_op": "torch.nn.modules.conv.Conv3d",
            "kernel_sizes": [[1, 3, 3], [3, 3, 3], [3, 3, 3]], "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
            "n_conv_per_stage": [1, 1, 1], "n_conv_per_stage_decoder": [1, 1], "conv_bias": True,
            "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    resample = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    return {
        "dataset_name": dataset, "plans_name": plans_name,
        "original_median_spacing_after_transp": list(spacing), "original_median_shape_after_transp": [24, 48, 48],
        "image_reader_writer": reader, "transpose_forward": list(transpose), "transpose_backward": list(transpose),
        "configurations": {configuration: {
            "data_identifier": f"{plans_name}_{configuration}", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": list(patch), "median_image_size_in_voxels": [24, 48, 48],
            "spacing": list(spacing), "normalization_schemes": [normalization], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": resample,
            "resampling_fn_seg_kwargs": {**resample, "is_seg": True, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {**resample, "order": 1},
            "architecture": arch, "batch_dice": True,
        }},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": INTENSITY},
    }


def dataset_json(labels: Mapping = LABELS, channels: Optional[Mapping] = None) -> dict:
    return {"channel_names": dict(channels or {"0": "CT"}), "labels": dict(labels), "numTraining": 3,
            "file_ending": ".nii.gz"}


def build_network(plans: dict, dataset: dict, configuration: str = "3d_fullres", seed: int = 0):
    """nnunetv2 builds the network from the plans; weights from a fixed seed; output biases spread the classes."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    cm = PlansManager(plans).get_configuration(configuration)
    n_out = PlansManager(plans).get_label_manager(dataset).num_segmentation_heads
    torch.manual_seed(seed)
    net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                 cm.network_arch_init_kwargs_req_import, 1, n_out, allow_init=True,
                                 deep_supervision=False)
    with torch.no_grad():
        seg = net.decoder.seg_layers[-1]
        seg.weight.mul_(4.0)  # a random network's logits are nearly flat: make the classes compete
        seg.bias.copy_(torch.linspace(0.3, -0.3, n_out))
    return net


def checkpoint(net, plans: dict, dataset: dict, configuration: str, fold, trainer: str, extra=None) -> dict:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    ckpt = {
        "network_weights": net.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "grad_scaler_state": None,
        "logging": {"mean_fg_dice": [np.float64(0.41)], "ema_fg_dice": [np.float64(0.41)],
                    "dice_per_class_or_region": [[np.float64(0.5), np.float64(0.32)]],
                    "train_losses": [np.float64(-0.2)], "val_losses": [np.float32(-0.1)], "lrs": [0.01],
                    "epoch_start_timestamps": [time.time() - 5], "epoch_end_timestamps": [time.time()]},
        "_best_ema": np.float64(0.41),
        "current_epoch": 1,
        "init_args": {"plans": plans, "configuration": configuration, "fold": fold, "dataset_json": dataset,
                      "device": torch.device("cpu")},
        "trainer_name": trainer,
        "inference_allowed_mirroring_axes": (0, 1, 2),
    }
    if extra:
        ckpt.update(extra)
    return ckpt


def write_folder(root: Path, dataset: str = "Dataset999_Tiny", trainer: str = "nnUNetTrainer",
                 plans_name: str = "nnUNetPlans", configuration: str = "3d_fullres", folds=(0,),
                 labels: Mapping = LABELS, checkpoint_name: str = "checkpoint_final.pth", extra=None,
                 **plans_kw) -> Path:
    """``root/<dataset>/<trainer>__<plans>__<configuration>/`` with one checkpoint per fold (seed: its index + 1)."""
    folder = Path(root) / dataset / f"{trainer}__{plans_name}__{configuration}"
    folder.mkdir(parents=True, exist_ok=True)
    plans = plans_json(dataset, plans_name, configuration, **plans_kw)
    ds = dataset_json(labels)
    (folder / "plans.json").write_text(json.dumps(plans, indent=2))
    (folder / "dataset.json").write_text(json.dumps(ds, indent=2))
    for i, fold in enumerate(folds):
        (folder / f"fold_{fold}").mkdir(exist_ok=True)
        net = build_network(plans, ds, configuration, seed=i + 1)  # seeds 1, 2: every class shows up
        torch.save(checkpoint(net, plans, ds, configuration, fold, trainer, extra),
                   folder / f"fold_{fold}" / checkpoint_name)
    return folder


def ct_volume(shape=(20, 40, 44), seed: int = 3) -> np.ndarray:
    """A smooth CT-like volume in HU (air, soft tissue, a bright tube), float32, (z, y, x)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    vol = np.where(y ** 2 + x ** 2 < 0.7, 40.0, -900.0)
    vol += np.where((y - 0.2) ** 2 + (x + 0.3) ** 2 < 0.03, 500.0, 0.0)
    vol += 200.0 * np.sin(3 * z + 2 * x) + rng.normal(0, 30, shape)
    return vol.astype(np.float32)


def nifti_affine(grid) -> np.ndarray:
    """The RAS affine a NIfTI of this grid has (voxel (i, j, k) = array[k, j, i]), from the grid's own mapping."""
    origin = grid.index_to_world((0, 0, 0))
    steps = [grid.index_to_world(k) - origin for k in ((0, 0, 1), (0, 1, 0), (1, 0, 0))]  # i, j, k in LPS
    affine = np.eye(4)
    affine[:3, :3] = np.diag([-1, -1, 1]) @ np.stack(steps, axis=1)
    affine[:3, 3] = np.diag([-1, -1, 1]) @ origin
    return affine
