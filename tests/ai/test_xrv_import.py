"""ai.runners.xrv_import: torchvision (and so TorchXRayVision) imports where its C++ operators cannot load for this
torch, only in that case, and its operators then raise a clear error instead of computing anything."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ai.runners import xrv_import

ROOT = Path(__file__).resolve().parents[2]
needs_torchvision = pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                                       reason="torchvision is not installed (pip install 'radview[xrv]')")


def test_only_torchvisions_missing_operator_error_is_answered():
    assert xrv_import.missing_operator(RuntimeError("operator torchvision::nms does not exist")) == "nms"
    assert xrv_import.missing_operator(RuntimeError("operator torchvision::qnms does not exist\n")) == "qnms"
    for other in (RuntimeError("operator aten::nms does not exist"),
                  RuntimeError("Couldn't load custom C++ ops: operator torchvision::nms does not exist"),
                  RuntimeError("operator torchvision::nms does not exist for CUDA"),
                  ImportError("operator torchvision::nms does not exist"), ValueError("nms")):
        assert xrv_import.missing_operator(other) is None
    assert len({s.split("(", 1)[0] for s in xrv_import.SCHEMAS}) == len(xrv_import.SCHEMAS) == 14


@needs_torchvision
def test_torchvision_imports_and_its_missing_kernels_raise_clearly():
    tv = xrv_import.import_torchvision()
    assert xrv_import.import_torchvision() is tv  # a second call changes nothing
    assert hasattr(tv.models, "resnet50") and hasattr(tv.transforms, "Compose")
    if not xrv_import.kernels_missing():  # a torchvision that matches its torch: its own operators
        assert tv.extension._has_ops()
        return
    assert not tv.extension._has_ops()  # the case the schemas are defined for, and no other
    boxes, scores = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]]), torch.tensor([0.9, 0.8])
    with pytest.raises(RuntimeError, match=r"Couldn't load custom C\+\+ ops"):  # torchvision's own check comes first
        tv.ops.nms(boxes, scores, 0.5)
    with pytest.raises(xrv_import.MissingKernelError, match=r"torchvision::nms has no kernel here.*install"):
        torch.ops.torchvision.nms(boxes, scores, 0.5)
    with pytest.raises(xrv_import.MissingKernelError, match="torchvision::roi_align"):
        torch.ops.torchvision.roi_align(torch.zeros(1, 1, 4, 4), torch.zeros(1, 5), 1.0, 2, 2, 0, False)
    # torchvision's pure-PyTorch parts work: box IoU of two 2 × 2 boxes overlapping in a 1 × 1 square
    assert float(tv.ops.box_iou(boxes[:1], boxes[1:])) == pytest.approx(1 / 7)


SCRIPT = """
import sys, torch
from ai.runners import xrv_import
sys.modules["torchvision"] = None  # torchvision not installed: the ImportError passes through, nothing is defined
try:
    xrv_import.import_torchvision()
except ImportError:
    pass
else:
    raise SystemExit("an ImportError was expected")
assert not xrv_import.kernels_missing()
del sys.modules["torchvision"]
# the two schemas torchvision's import needs already there, as a torchvision whose C++ extension loads has them:
# the import succeeds and import_torchvision defines nothing
lib = torch.library.Library("torchvision", "FRAGMENT")
lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
tv = xrv_import.import_torchvision()
assert not xrv_import.kernels_missing()
try:
    torch._C._dispatch_find_schema_or_throw("torchvision::roi_align", "")
except RuntimeError:
    print("untouched", tv.__version__)
else:
    raise SystemExit("roi_align was defined")
"""


@needs_torchvision
def test_nothing_is_defined_when_torchvision_imports_by_itself():
    """In a fresh interpreter: a torchvision that imports (or one that is absent) is left as it is."""
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("untouched ")
