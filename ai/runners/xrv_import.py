"""Importing torchvision (and so TorchXRayVision) when torchvision's C++ operators cannot load for this torch.

Why: TorchXRayVision imports torchvision, though its DenseNet (``torchxrayvision.models.DenseNet``) is plain PyTorch
and uses none of torchvision's C++ operators. Measured here: torch is the CPU build ``2.13.0+cpu`` (the one CI pins)
and the only torchvision wheels that install (0.28.0, which requires ``torch==2.13.0``) are CUDA builds whose
``torchvision/_C.so`` needs ``libc10_cuda.so``. torchvision then silently skips its extension
(``torchvision.extension._has_ops()`` is False) and its ``_meta_registrations`` fails on import with
``RuntimeError: operator torchvision::nms does not exist``: it registers fake kernels for ``torchvision::nms`` and
``torchvision::qnms`` whose schemas only the missing ``_C.so`` defines.

:func:`import_torchvision` imports torchvision; only when that fails with exactly this error *and* torchvision's own
``extension._has_ops()`` says its C++ operators did not load, it defines the ``torchvision::*`` operator schemas
(:data:`SCHEMAS`, as the installed torchvision 0.28's ``_C.so`` defines them, the same text as pytorch/vision's
``torchvision/csrc/ops/*.cpp``) with ``torch.library``, and imports torchvision again, so that its Python part
(models, transforms, datasets) imports. No operator is implemented: each gets a kernel that only raises
:class:`MissingKernelError` (a RuntimeError saying why and what to install), while torchvision's own wrappers
(``torchvision.ops.nms``, ``roi_align`` …) keep raising torchvision's "Couldn't load custom C++ ops" first. A user
whose torchvision matches their torch never takes this path: ``import torchvision`` succeeds and nothing here runs
(:func:`kernels_missing` stays False). Any other failure is raised unchanged.
"""
from __future__ import annotations

import re
import sys
import threading
from types import ModuleType

import torch

#: the ``torchvision::*`` operator schemas of torchvision 0.28's C++ extension (``TORCH_LIBRARY_FRAGMENT(torchvision,
#: m)`` in torchvision/csrc/ops/*.cpp, read from the installed ``_C.so``)
SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor",
    "roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio, bool aligned) -> Tensor",
    "_roi_align_backward(Tensor grad, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "SymInt batch_size, SymInt channels, SymInt height, SymInt width, int sampling_ratio, bool aligned) -> Tensor",
    "qroi_align(Tensor input, Tensor rois, float input_scale, int input_zero_point, float rois_scale, "
    "int rois_zero_point, float spatial_scale, SymInt pooled_height, SymInt pooled_width, int sampling_ratio, "
    "bool aligned) -> Tensor",
    "roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
    "-> (Tensor, Tensor)",
    "_roi_pool_backward(Tensor grad, Tensor rois, Tensor argmax, float spatial_scale, SymInt pooled_height, "
    "SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) -> Tensor",
    "ps_roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width, "
    "int sampling_ratio) -> (Tensor, Tensor)",
    "_ps_roi_align_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, int sampling_ratio, SymInt batch_size, SymInt channels, "
    "SymInt height, SymInt width) -> Tensor",
    "ps_roi_pool(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, SymInt pooled_width) "
    "-> (Tensor, Tensor)",
    "_ps_roi_pool_backward(Tensor grad, Tensor rois, Tensor channel_mapping, float spatial_scale, "
    "SymInt pooled_height, SymInt pooled_width, SymInt batch_size, SymInt channels, SymInt height, SymInt width) "
    "-> Tensor",
    "deform_conv2d(Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, SymInt stride_h, "
    "SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, SymInt groups, "
    "SymInt offset_groups, bool use_mask) -> Tensor",
    "_deform_conv2d_backward(Tensor grad, Tensor input, Tensor weight, Tensor offset, Tensor mask, Tensor bias, "
    "SymInt stride_h, SymInt stride_w, SymInt pad_h, SymInt pad_w, SymInt dilation_h, SymInt dilation_w, "
    "SymInt groups, SymInt offset_groups, bool use_mask) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
)
#: the one error this module answers
MISSING_OPERATOR = re.compile(r"operator torchvision::(\w+) does not exist")

_library: torch.library.Library | None = None  # kept alive: a Library's registrations end with it
_lock = threading.Lock()  # runners may load models from several threads


class MissingKernelError(RuntimeError):
    """A torchvision C++ operator was called, but torchvision's C++ extension did not load for this torch."""


def kernels_missing() -> bool:
    """True when :func:`import_torchvision` had to define torchvision's operator schemas (no C++ kernels here)."""
    return _library is not None


def missing_operator(exc: BaseException) -> str | None:
    """The operator name when ``exc`` is exactly torchvision's "operator torchvision::X does not exist", else None."""
    if not isinstance(exc, RuntimeError):
        return None
    match = MISSING_OPERATOR.fullmatch(str(exc).strip())
    return match.group(1) if match else None


def _extension_failed() -> bool:
    """torchvision's own verdict (``torchvision.extension._has_ops()``, left imported by the failed import): its
    C++ operators did not load."""
    extension = sys.modules.get("torchvision.extension")
    return extension is not None and not extension._has_ops()


def _forget_torchvision() -> None:
    """Drop what the failed import left in ``sys.modules`` so that the next import starts afresh."""
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]


def _raiser(name: str):
    def kernel(*args, **kwargs):
        raise MissingKernelError(
            f"torchvision::{name} has no kernel here: torchvision's C++ extension did not load for torch "
            f"{torch.__version__} (a torchvision built for another torch or CUDA). radview defined the operator's "
            "schema only so that torchvision's Python part imports; install the torchvision built for this torch "
            "to use its detection operators.")
    return kernel


def _define_schemas() -> None:
    global _library
    if _library is not None:
        return
    library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in SCHEMAS:
        name = schema.split("(", 1)[0]
        library.define(schema)
        # CPU, CUDA and any other backend; on Meta, torchvision's own fake kernels (its import registers them) win
        library.impl(name, _raiser(name), "CompositeExplicitAutograd")
    _library = library


def import_torchvision() -> ModuleType:
    """``torchvision``, imported; its operator schemas defined first only in the one case the module docstring
    describes. Any other failure is raised as it is."""
    with _lock:
        try:
            import torchvision
            return torchvision
        except RuntimeError as exc:
            name = missing_operator(exc)
            if name is None or not _extension_failed():
                raise
            if _library is not None or name not in {s.split("(", 1)[0] for s in SCHEMAS}:
                raise RuntimeError(f"torchvision needs operator torchvision::{name}, which radview does not know "
                                   "(a newer torchvision?); install the torchvision built for this torch") from exc
        _forget_torchvision()
        _define_schemas()
        import torchvision
        return torchvision
