"""nnU-Net v2 models, run by nnunetv2's own predictor (``nnUNetPredictor``) with safely loaded weights.

Loading follows ``nnUNetPredictor.initialize_from_trained_model_folder`` step by step, and then hands the
result to ``nnUNetPredictor.manual_initialization``. What differs, and why:

* checkpoints are read with :func:`ai.runners.safe_load.load_checkpoint` (``weights_only=True``); nnunetv2
  uses ``torch.load(weights_only=False)``, which runs whatever code a pickled file names;
* plans.json names the network class and its building blocks, which nnunetv2 imports and calls by name
  (``pydoc.locate``); here each must be a ``torch.nn.Module`` class, the network from
  ``dynamic_network_architectures.architectures``, the blocks from ``torch.nn`` (or dynamic_network_architectures);
* the trainer class is found by reading nnunetv2's trainer sources for its ``class`` statement and importing that
  one module (nnunetv2 imports every trainer module, and one with a broken optional dependency breaks the
  search). A trainer nnunetv2 does not ship is built as ``nnUNetTrainer`` builds it (from plans.json), with a
  note; the strict weight loading refuses a network that does not fit.

Running: nnunetv2's preprocessor (crop to non-zero, normalise, resample to the plans' spacing), its sliding
window with Gaussian blending and optional mirroring, and its export (resample the logits to the input grid,
argmax, undo the crop), all in this process and thread. Progress and Cancel ride on a forward pre-hook of the
network: before each window ``ctx.step`` reports "window i/n" (n from nnunetv2's own window list) and raises
:class:`~ai.api.Cancelled` when asked. nnunetv2 feeds the windows from a helper thread; after a cancel that
thread is let finish, so nothing is left behind.

The image is given to nnU-Net as (z, y, x) with spacing (z, y, x), as nnunetv2's SimpleITK reader gives it an
image file of the same grid (``nnUNetv2_predict`` on this series saved as NIfTI/NRRD would see the same array).
Models whose plans use ``NibabelIOWithReorient`` get the image in nibabel's closest canonical (RAS) orientation,
as that reader would give it, and the labels are turned back.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import queue
import re
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ai import totalseg
from ai.api import InferenceRequest, ModelError
from ai.manifest import ManifestError
from ai.model_paths import inside
from ai.nnunet_folder import available_folds, read_json
from ai.runners.base import RunContext, RunOutput
from ai.runners.safe_load import load_checkpoint
from ai.weights_download import fetch_with_consent
from radview_base.geometry import Geometry

NETWORK_PREFIX = "dynamic_network_architectures.architectures."
BLOCK_PREFIXES = ("torch.nn.", "dynamic_network_architectures.")
_NAME = re.compile(r"^[A-Za-z_]\w*$")

try:  # the runner module is imported only when an nnU-Net model runs
    import nnunetv2
    from nnunetv2.inference.export_prediction import convert_predicted_logits_to_segmentation_with_correct_shape
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
except ImportError as _exc:  # pragma: no cover - exercised where nnunetv2 is missing
    _IMPORT_ERROR: Optional[ImportError] = _exc
    nnUNetPredictor = object  # type: ignore[assignment,misc]
else:
    _IMPORT_ERROR = None


# --- nnunetv2's predictor, observed --------------------------------------------------------------------------
class _Windows(list):
    """nnunetv2's own list of sliding-window slicers; remembers the queue its feeder thread fills."""

    def __init__(self, items):
        super().__init__(items)
        self.queue = None
        self.stop = False

    def __iter__(self):
        # called by nnunetv2's feeder thread (``for s in slicers``): its frame holds the queue ``q``
        q = sys._getframe(1).f_locals.get("q")
        if hasattr(q, "get") and hasattr(q, "put"):
            self.queue = q
        return self._each()

    def _each(self):
        for item in list.__iter__(self):
            if self.stop:
                return
            yield item

    def release_feeder(self, timeout: float = 10.0) -> None:
        """After an interrupted window loop: let the feeder thread put its last item and its 'end', and exit."""
        self.stop = True
        q = self.queue
        if q is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                item = q.get(timeout=0.2)
            except queue.Empty:
                continue
            if isinstance(item, str) and item == "end":
                return


class _Predictor(nnUNetPredictor):  # type: ignore[misc,valid-type]
    """nnUNetPredictor that tells its observer each new window list (one per fold)."""

    on_windows = None

    def _internal_get_sliding_window_slicers(self, image_size):
        windows = _Windows(super()._internal_get_sliding_window_slicers(image_size))
        if self.on_windows is not None:
            self.on_windows(windows)
        return windows


class _WindowProgress:
    """A forward pre-hook: progress "window i/n" per network call; Cancelled when the user cancels."""

    def __init__(self, ctx: RunContext, n_folds: int, calls_per_window: int):
        self.ctx = ctx
        self.n_folds = max(n_folds, 1)
        self.calls_per_window = max(calls_per_window, 1)
        self.calls = 0
        self.windows: Optional[_Windows] = None
        self.n_windows = 0
        self.fold_index = -1

    def on_windows(self, windows: _Windows) -> None:
        self.windows = windows
        self.n_windows = len(windows)
        self.fold_index += 1

    def __call__(self, module, args) -> None:
        n = max(self.n_windows, 1)
        total = self.n_folds * n * self.calls_per_window
        window = (self.calls // self.calls_per_window) % n + 1
        text = f"window {window}/{n}"
        if self.n_folds > 1:
            text += f", fold {self.fold_index + 1}/{self.n_folds}"
        self.calls += 1
        self.ctx.step((self.calls - 1) / total, text)  # raises Cancelled inside nnunetv2's window loop

    def release(self) -> None:
        if self.windows is not None:
            self.windows.release_feeder()


# --- loading -------------------------------------------------------------------------------------------------
def _need_nnunetv2() -> None:
    if _IMPORT_ERROR is not None:
        raise ModelError(f"nnU-Net models need the Python package nnunetv2 (pip install nnunetv2): {_IMPORT_ERROR}")


def _read_json(path: Path) -> dict:
    try:
        return read_json(path)
    except ManifestError as exc:
        raise ModelError(str(exc)) from None


def fold_folder(folder: Path, fold) -> Path:
    return folder / f"fold_{fold}"


def parse_folds(value) -> list:
    """``[0, 1, "all"]`` from a list, a single fold or text like ``"0,1"``."""
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        value = [v for v in str(value).replace(",", " ").split()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ModelError(f"folds must be a list of fold numbers (or 'all'), got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool):
            raise ModelError(f"fold {v!r} is not a fold number")
        if isinstance(v, str) and v.strip().lower() == "all":
            v = "all"
        else:
            try:
                v = int(v)
            except (TypeError, ValueError):
                raise ModelError(f"fold {v!r} is not a fold number (or 'all')") from None
        if v not in out:
            out.append(v)
    return out


def _module_class(dotted: str, prefixes: tuple[str, ...]):
    """The torch.nn.Module subclass a dotted name means, if it is one from the allowed packages, else None."""
    import pydoc

    if not isinstance(dotted, str) or not dotted.startswith(prefixes) or not all(_NAME.match(p) for p in
                                                                                 dotted.split(".")):
        return None
    obj = pydoc.locate(dotted)  # imports only inside the allowed packages (checked above)
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module) and obj.__module__.startswith(
            tuple(p.split(".")[0] + "." for p in prefixes)):
        return obj
    return None


def check_architecture(configuration_manager) -> None:
    """Refuse plans.json that would make nnunetv2 build anything but a network of dynamic_network_architectures
    from torch.nn (or dynamic_network_architectures) blocks: nnunetv2 imports and calls these names as given."""
    name = configuration_manager.network_arch_class_name
    if _module_class(name, (NETWORK_PREFIX,)) is None:
        raise ModelError(f"plans.json names the network class {name!r}; radview only builds networks from "
                         f"{NETWORK_PREFIX}*")
    kwargs = configuration_manager.network_arch_init_kwargs
    for key in configuration_manager.network_arch_init_kwargs_req_import:
        value = kwargs.get(key) if isinstance(kwargs, dict) else None
        if value is not None and _module_class(value, BLOCK_PREFIXES) is None:
            raise ModelError(f"plans.json: '{key}' = {value!r}; radview only builds networks from "
                             f"{' or '.join(p + '*' for p in BLOCK_PREFIXES)} building blocks")


def find_trainer_class(trainer_name: str) -> tuple[type, str]:
    """nnunetv2's trainer class of that name, and a note ("" when found)."""
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    if trainer_name == "nnUNetTrainer":
        return nnUNetTrainer, ""
    fallback = (f"the trainer {trainer_name} is not part of the installed nnunetv2: the network was built as "
                "nnUNetTrainer builds it (from plans.json)")
    if not _NAME.match(trainer_name or ""):
        return nnUNetTrainer, fallback
    root = Path(nnunetv2.__file__).resolve().parent / "training" / "nnUNetTrainer"
    statement = re.compile(rf"^class\s+{re.escape(trainer_name)}\s*\(", re.M)
    for source in sorted(root.rglob("*.py")):
        try:
            if not statement.search(source.read_text(encoding="utf-8", errors="ignore")):
                continue
        except OSError:
            continue
        module = "nnunetv2.training.nnUNetTrainer." + ".".join(source.relative_to(root).with_suffix("").parts)
        try:
            cls = getattr(importlib.import_module(module), trainer_name, None)
        except Exception as exc:  # noqa: BLE001 - a trainer module with a missing optional dependency
            return nnUNetTrainer, f"{fallback}; its module {module} could not be imported ({type(exc).__name__})"
        if isinstance(cls, type) and issubclass(cls, nnUNetTrainer):
            return cls, ""
    return nnUNetTrainer, fallback


def build_network(trainer_class: type, plans_manager, configuration_manager, n_in: int, n_out: int):
    """The network, built as nnunetv2's predictor builds it (new and old build_network_architecture signature)."""
    sig = inspect.signature(trainer_class.build_network_architecture)
    if "plans_manager" in sig.parameters:
        return trainer_class.build_network_architecture(plans_manager, configuration_manager, n_in, n_out,
                                                        enable_deep_supervision=False)
    return trainer_class.build_network_architecture(
        configuration_manager.network_arch_class_name, configuration_manager.network_arch_init_kwargs,
        configuration_manager.network_arch_init_kwargs_req_import, n_in, n_out, enable_deep_supervision=False)


def _checked_checkpoint(path: Path) -> dict:
    ckpt = load_checkpoint(path, map_location="cpu")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("network_weights"), dict):
        raise ModelError(f"{path.parent.name}/{path.name}: not an nnU-Net v2 checkpoint (no 'network_weights')")
    weights = ckpt["network_weights"]
    if not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise ModelError(f"{path.parent.name}/{path.name}: 'network_weights' is not a state_dict of tensors")
    if not isinstance(ckpt.get("trainer_name"), str):
        raise ModelError(f"{path.parent.name}/{path.name}: no 'trainer_name' in the checkpoint")
    init_args = ckpt.get("init_args")
    if not isinstance(init_args, dict) or not isinstance(init_args.get("configuration"), str):
        raise ModelError(f"{path.parent.name}/{path.name}: no 'init_args.configuration' in the checkpoint")
    return ckpt


# --- orientation (nibabel's closest canonical, as NibabelIOWithReorient and TotalSegmentator use) -------------
class RasCanonical:
    """The image in nibabel's closest canonical orientation (RAS+), as ``nib.as_closest_canonical`` gives a NIfTI
    of this grid, and the way back. Axis permutations and flips only: exact and exactly undone."""

    def __init__(self, grid: Geometry):
        from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

        lps_to_ras = np.diag([-1.0, -1.0, 1.0])
        affine = np.eye(4)
        affine[:3, :3] = lps_to_ras @ (grid.direction_matrix * np.asarray(grid.spacing_zyx[::-1]))
        affine[:3, 3] = lps_to_ras @ np.asarray(grid.origin_lps)
        self.affine = affine  # the NIfTI (RAS) affine of the grid, voxel (i, j, k) = array[k, j, i]
        self.ornt = io_orientation(affine)
        self.back = ornt_transform(axcodes2ornt("RAS"), self.ornt)
        spacing_xyz = np.asarray(grid.spacing_zyx[::-1], dtype=float)
        out = np.empty(3)
        for axis, (target, _flip) in enumerate(self.ornt):
            out[int(target)] = spacing_xyz[axis]
        self.spacing_zyx = tuple(float(v) for v in out[::-1])

    @property
    def is_identity(self) -> bool:
        return bool(np.array_equal(self.ornt, [[0, 1], [1, 1], [2, 1]]))

    def forward(self, array_zyx: np.ndarray) -> np.ndarray:
        from nibabel.orientations import apply_orientation

        return apply_orientation(np.asarray(array_zyx).transpose(2, 1, 0), self.ornt).transpose(2, 1, 0)

    def backward(self, array_zyx: np.ndarray) -> np.ndarray:
        from nibabel.orientations import apply_orientation

        out = apply_orientation(np.asarray(array_zyx).transpose(2, 1, 0), self.back).transpose(2, 1, 0)
        return np.ascontiguousarray(out)


# --- the runner ----------------------------------------------------------------------------------------------
class NnUNetModel:
    """An nnU-Net v2 results folder (see :mod:`ai.nnunet_folder`), run by nnunetv2's predictor."""

    def __init__(self, manifest, device):
        _need_nnunetv2()
        self.manifest = manifest
        self.device = torch.device(device)
        self.notes: list[str] = []
        self._weights: dict = {}
        self.predictor: Optional[_Predictor] = None
        folder = manifest.parameters.get("folder") or manifest.path
        if folder:
            self.load(Path(folder))

    # loading ---------------------------------------------------------------------------------------------
    def load(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.checkpoint = str(self.manifest.parameters.get("checkpoint") or "checkpoint_final.pth")
        if "/" in self.checkpoint or "\\" in self.checkpoint or not self.checkpoint.endswith(".pth"):
            raise ModelError(f"checkpoint {self.checkpoint!r} must be a file name like checkpoint_final.pth")
        dataset_json = _read_json(inside(self.folder, "dataset.json", "dataset.json", ModelError))
        plans = _read_json(inside(self.folder, "plans.json", "plans.json", ModelError))
        folds = parse_folds(self.manifest.parameters.get("folds") or [0])
        first = self._fold_checkpoint(folds[0])
        self.trainer_name = first["trainer_name"]
        self.configuration_name = first["init_args"]["configuration"]
        mirror_axes = first.get("inference_allowed_mirroring_axes")
        if mirror_axes is not None:
            mirror_axes = tuple(int(a) for a in mirror_axes)
        try:
            plans_manager = PlansManager(plans)
            configuration_manager = plans_manager.get_configuration(self.configuration_name)
            label_manager = plans_manager.get_label_manager(dataset_json)
        except (KeyError, ValueError, RuntimeError, AssertionError, TypeError) as exc:
            raise ModelError(f"plans.json/dataset.json do not describe configuration "
                             f"'{self.configuration_name}': {type(exc).__name__}: {exc}") from None
        if configuration_manager.previous_stage_name is not None:
            raise ModelError(f"configuration '{self.configuration_name}' is a cascade stage; radview does not run "
                             "cascades")
        if label_manager.has_regions:
            raise ModelError("region-based nnU-Net models are not supported (their outputs overlap)")
        check_architecture(configuration_manager)
        n_in = determine_num_input_channels(plans_manager, configuration_manager, dataset_json)
        if n_in != 1:
            raise ModelError(f"the model needs {n_in} input channels; radview feeds one series")
        trainer_class, note = find_trainer_class(self.trainer_name)
        if note:
            self.notes.append(note)
        try:
            network = build_network(trainer_class, plans_manager, configuration_manager, n_in,
                                    label_manager.num_segmentation_heads)
        except Exception as exc:  # noqa: BLE001 - any failure of the architecture code is a model error
            raise ModelError(f"the network described by plans.json could not be built: "
                             f"{type(exc).__name__}: {exc}") from None
        try:
            network.load_state_dict(first["network_weights"])
        except RuntimeError as exc:
            raise ModelError(f"the weights do not fit the network described by plans.json: "
                             f"{str(exc).splitlines()[0][:300]}") from None
        with contextlib.redirect_stdout(io.StringIO()):  # it prints a remark about CPU devices
            predictor = _Predictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                   perform_everything_on_device=self.device.type == "cuda", device=self.device,
                                   verbose=False, verbose_preprocessing=False, allow_tqdm=False)
        predictor.manual_initialization(network, plans_manager, configuration_manager, None, dataset_json,
                                        self.trainer_name, mirror_axes)
        self.predictor = predictor
        self._weights = {folds[0]: first["network_weights"]}
        for fold in folds[1:]:
            self._fold_weights(fold)

    def _fold_checkpoint(self, fold) -> dict:
        name = f"{fold_folder(Path(), fold)}/{self.checkpoint}"
        path = inside(self.folder, name, name, ModelError)  # a link out of the folder is refused unopened
        if not path.is_file():
            have = ", ".join(str(f) for f in available_folds(self.folder, self.checkpoint)) or "none"
            raise ModelError(f"fold {fold} of this nnU-Net model has no {self.checkpoint} (available folds: {have})")
        return _checked_checkpoint(path)

    def _fold_weights(self, fold) -> dict:
        if fold not in self._weights:
            ckpt = self._fold_checkpoint(fold)
            trained = (ckpt["trainer_name"], ckpt["init_args"]["configuration"])
            if trained != (self.trainer_name, self.configuration_name):
                raise ModelError(f"fold {fold} was trained with {ckpt['trainer_name']}/"
                                 f"{ckpt['init_args']['configuration']}, not {self.trainer_name}/"
                                 f"{self.configuration_name} like the others")
            self._weights[fold] = ckpt["network_weights"]
        return self._weights[fold]

    # running ---------------------------------------------------------------------------------------------
    def settings(self, request: InferenceRequest) -> dict[str, Any]:
        params = self.manifest.resolve_parameters(request.options)
        step = params.get("tile_step_size", 0.5)
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not 0.0 < float(step) <= 1.0:
            raise ModelError(f"tile_step_size must be a number in (0, 1], got {step!r}")
        return {"folds": parse_folds(params.get("folds") or [0]), "use_mirroring": bool(params.get("use_mirroring")),
                "tile_step_size": float(step)}

    def predict(self, array_zyx: np.ndarray, spacing_zyx, ctx: RunContext, folds: list, use_mirroring: bool,
                tile_step_size: float) -> tuple[np.ndarray, dict]:
        """nnU-Net's labels for one (z, y, x) image on its own grid, and what was used."""
        p = self.predictor
        weights = [self._fold_weights(f) for f in folds]
        ctx.step(0.0, "preprocessing (nnU-Net)")
        p.list_of_parameters = weights
        p.use_mirroring = use_mirroring
        p.tile_step_size = tile_step_size
        p.perform_everything_on_device = self.device.type == "cuda" and not ctx.stitch_on_cpu
        # exactly what nnUNetPredictor.predict_single_npy_array does, step by step (with progress and cancel)
        data = np.asarray(array_zyx, dtype=np.float32)[None]
        props = {"spacing": [float(s) for s in spacing_zyx]}
        preprocessor = p.configuration_manager.preprocessor_class(verbose=False)
        data, _, props = preprocessor.run_case_npy(data, None, props, p.plans_manager, p.configuration_manager,
                                                   p.dataset_json)
        data = torch.from_numpy(data)
        ctx.step(0.1, "preprocessed")
        axes = p.allowed_mirroring_axes if use_mirroring else None
        progress = _WindowProgress(ctx.sub(0.1, 0.9), len(weights), 2 ** len(axes) if axes else 1)
        p.on_windows = progress.on_windows
        net = getattr(p.network, "_orig_mod", p.network)
        hook = net.register_forward_pre_hook(progress)
        threads = torch.get_num_threads()
        try:
            logits = p.predict_logits_from_preprocessed_data(data).cpu()
        except BaseException:
            progress.release()
            raise
        finally:
            hook.remove()
            p.on_windows = None
            torch.set_num_threads(threads)  # nnunetv2 restores it only when it finishes
            p.list_of_parameters = None
        del data
        ctx.step(0.9, "back onto the image grid (nnU-Net)")
        seg = convert_predicted_logits_to_segmentation_with_correct_shape(
            logits, p.plans_manager, p.configuration_manager, p.label_manager, props, return_probabilities=False)
        torch.set_num_threads(threads)
        used = {"folds": folds, "use_mirroring": use_mirroring, "tile_step_size": tile_step_size,
                "mirror_axes": list(axes) if axes else [], "windows": progress.n_windows,
                "checkpoint": self.checkpoint, "trainer": self.trainer_name, "configuration": self.configuration_name}
        return np.asarray(seg), used

    def model_orientation(self, grid: Geometry) -> Optional[RasCanonical]:
        """Models trained with NibabelIOWithReorient saw RAS-canonical images."""
        if self.predictor.plans_manager.plans.get("image_reader_writer") == "NibabelIOWithReorient":
            return RasCanonical(grid)
        return None

    def run(self, request: InferenceRequest, ctx: RunContext) -> RunOutput:
        s = self.settings(request)
        canonical = self.model_orientation(request.grid)
        array = canonical.forward(request.array) if canonical is not None else request.array
        spacing = canonical.spacing_zyx if canonical is not None else request.grid.spacing_zyx
        labels, used = self.predict(array, spacing, ctx, s["folds"], s["use_mirroring"], s["tile_step_size"])
        if canonical is not None:
            labels = canonical.backward(labels)
            used["orientation"] = "nibabel closest canonical (RAS), as NibabelIOWithReorient"
        return RunOutput(labels=labels, parameters=used, messages=list(self.notes))


# --- TotalSegmentator tasks --------------------------------------------------------------------------------------
def resample_like_totalseg(image_xyz: np.ndarray, spacing_xyz, target_mm: float) -> np.ndarray:
    """TotalSegmentator's ``change_spacing(img, [r, r, r], order=3, dtype=np.int32)``: scipy's cubic-spline zoom
    by ``spacing / r`` (computed in float64), truncated to int32."""
    from scipy import ndimage

    zoom = np.asarray(spacing_xyz, dtype=float) / float(target_mm)
    return ndimage.zoom(image_xyz, zoom, order=3, output=np.float64).astype(np.int32)


def labels_back_like_totalseg(labels_xyz: np.ndarray, shape_xyz) -> np.ndarray:
    """TotalSegmentator's ``change_spacing(pred, target_shape=shape, order=0, dtype=np.uint8)``."""
    from scipy import ndimage

    zoom = np.asarray(shape_xyz, dtype=float) / np.asarray(labels_xyz.shape, dtype=float)
    out = ndimage.zoom(labels_xyz, zoom, order=0)
    if tuple(out.shape) != tuple(shape_xyz):
        raise ModelError(f"resampling the labels back gave {out.shape}, not the image's {tuple(shape_xyz)}")
    return out


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    blobs, n = ndimage.label(mask)
    if n <= 1:
        return mask
    counts = np.bincount(blobs.ravel())[1:]
    return blobs == (int(np.argmax(counts)) + 1)


def _without_small_blobs(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    from scipy import ndimage

    blobs, n = ndimage.label(mask)
    if n == 0:
        return mask
    counts = np.bincount(blobs.ravel())
    keep = counts > min_voxels
    keep[0] = False
    return keep[blobs]


def body_cleanup(labels: np.ndarray, voxel_mm3: float, trunk: int, extremities: int) -> np.ndarray:
    """TotalSegmentator's body post-processing: only the largest connected trunk; extremity blobs of 50 ml or
    less removed (keep_largest_blob_multilabel, remove_small_blobs_multilabel with [50000 / voxel mm³, 1e10])."""
    out = labels.copy()
    trunk_mask = out == trunk
    out[trunk_mask & ~_largest_blob(trunk_mask)] = 0
    limb_mask = out == extremities
    out[limb_mask & ~_without_small_blobs(limb_mask, 50000.0 / voxel_mm3)] = 0
    return out


class TotalSegModel(NnUNetModel):
    """A TotalSegmentator task (see :mod:`ai.totalseg`): its nnU-Net model, run with TotalSegmentator's input
    handling (closest canonical orientation, its resampling, its clean-up), the labels on the image's grid.
    Weights that are not on this computer are downloaded by TotalSegmentator only with ``allow_download``."""

    def __init__(self, manifest, device):
        _need_nnunetv2()
        self.manifest = manifest
        self.device = torch.device(device)
        self.notes = []
        self._weights = {}
        self.predictor = None
        self._once: list[str] = []
        self.task = totalseg.task(str(manifest.parameters.get("task", "")))
        folder = totalseg.find_task_folder(self.task)
        if folder is not None:
            self.load(folder)

    def _ensure_weights(self, options, ctx: RunContext) -> None:
        """The consent comes from the request's options only: a manifest's [parameters] cannot give it."""
        if self.predictor is not None:
            return
        folder = totalseg.find_task_folder(self.task)
        if folder is None:
            folder = fetch_with_consent(options, ctx, title=self.task.title, note=totalseg.download_note(self.task),
                                        by="TotalSegmentator", download=lambda: totalseg.download_weights(self.task),
                                        messages=self._once, wait=" (this can take minutes)")
        self.load(folder)

    def _label_id(self, name: str, default: int) -> int:
        return next((k for k, v in self.manifest.labels.items() if v == name), default)

    def run(self, request: InferenceRequest, ctx: RunContext) -> RunOutput:
        params = self.manifest.resolve_parameters(request.options)
        self._ensure_weights(request.options, ctx)
        s = self.settings(request)
        canonical = RasCanonical(request.grid)
        image_xyz = canonical.forward(request.array).transpose(2, 1, 0)
        spacing_xyz = canonical.spacing_zyx[::-1]
        r = float(params.get("resample_mm") or 0.0)
        if r > 0:
            ctx.step(0.0, f"resampling to {r:g} mm (as TotalSegmentator)")
            small_xyz = resample_like_totalseg(image_xyz, spacing_xyz, r)
            model_spacing_xyz = (r, r, r)
        else:
            small_xyz, model_spacing_xyz = image_xyz, spacing_xyz
        ctx.check_cancel()
        labels, used = self.predict(small_xyz.transpose(2, 1, 0), model_spacing_xyz[::-1], ctx.sub(0.05, 0.92),
                                    s["folds"], s["use_mirroring"], s["tile_step_size"])
        labels_xyz = np.ascontiguousarray(labels.transpose(2, 1, 0))
        if self.task.postprocess == "body":
            ctx.step(0.93, "clean-up (as TotalSegmentator)")
            labels_xyz = body_cleanup(labels_xyz, float(np.prod(model_spacing_xyz)),
                                      self._label_id("body_trunc", 1), self._label_id("body_extremities", 2))
        if r > 0:
            ctx.step(0.96, "labels back onto the image grid")
            labels_xyz = labels_back_like_totalseg(labels_xyz, image_xyz.shape)
        labels = canonical.backward(labels_xyz.transpose(2, 1, 0))
        used.update(task=self.task.name, task_id=self.task.task_id, resample_mm=r,
                    orientation="RAS (nibabel closest canonical), as TotalSegmentator", weights=str(self.folder))
        messages, self._once = list(self.notes) + self._once, []
        return RunOutput(labels=labels, parameters=used, messages=messages)
