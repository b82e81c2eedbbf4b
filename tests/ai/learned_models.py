"""Small learned models written to model folders for tests (TorchScript, safetensors, state_dict, ONNX)."""
from __future__ import annotations

from pathlib import Path

import torch

from ai.runners.architectures import UNet3D

MANIFEST = """\
id = "{id}"
name = "{id}"
version = "0.1"
modality = "CT"
[labels]
{labels}
[input]
spacing_mm = [{spacing}]
orientation = "{orientation}"
patch_size = [{patch}]
overlap = 0.5
[input.normalization]
kind = "ct"
clip = [-1000, 1000]
mean = 0.0
std = 1000.0
[network]
format = "{fmt}"
file = "{file}"
{extra}
"""


def write_model(folder: Path, model_id: str, net, fmt: str, labels=None, spacing=(1.5, 1.5, 1.5),
                orientation="LPS", patch=(8, 16, 16), args=None) -> Path:
    folder = folder / model_id
    folder.mkdir(parents=True)
    labels = labels or {1: "blob"}
    extra = ""
    if fmt == "torchscript":
        name = "model.pt"
        torch.jit.script(net).save(str(folder / name))
    elif fmt == "safetensors":
        from safetensors.torch import save_file

        name = "model.safetensors"
        save_file(net.state_dict(), str(folder / name))
    elif fmt == "checkpoint":
        name = "weights.pt"
        torch.save(net.state_dict(), folder / name)
    elif fmt == "onnx":
        name = "model.onnx"
        torch.onnx.export(net, torch.zeros(1, 1, *patch), str(folder / name), input_names=["image"],
                          output_names=["scores"], dynamic_axes={"image": {0: "b", 2: "z", 3: "y", 4: "x"},
                                                                 "scores": {0: "b", 2: "z", 3: "y", 4: "x"}},
                          dynamo=False)
    else:
        raise AssertionError(fmt)
    if fmt in ("safetensors", "checkpoint"):
        extra = 'architecture = "unet3d"\n[network.args]\n' + "".join(
            f"{k} = {v!r}\n".replace("(", "[").replace(")", "]").replace("'", '"') for k, v in (args or {}).items())
    (folder / "model.toml").write_text(MANIFEST.format(
        id=model_id, labels="\n".join(f'{k} = "{v}"' for k, v in labels.items()),
        spacing=", ".join(map(str, spacing)), orientation=orientation, patch=", ".join(map(str, patch)),
        fmt=fmt, file=name, extra=extra))
    return folder


def threshold_net(hu: float = -300.0) -> UNet3D:
    """A pointwise U-Net (1x1x1 kernels, no pooling, no normalisation) that outputs label 1 where HU > ``hu``.

    Two hidden channels carry ``s`` and ``-s`` (s = normalised intensity above the threshold) through the
    leaky ReLUs, so the logit difference is close to ``100 s``: antisymmetric, so resampling it is unbiased.
    """
    net = UNet3D(1, 2, features=(2,), kernel_size=1, norm="none")
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        block = net.encoders[0]
        block[0].weight[:, 0] = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
        block[0].bias.copy_(torch.tensor([-hu / 1000.0, hu / 1000.0]))  # normalised intensity is HU / 1000
        block[3].weight[0, 0] = 1.0
        block[3].weight[1, 1] = 1.0
        net.head.weight[1, 0] = 100.0
        net.head.weight[0, 1] = 100.0
    return net.eval()
