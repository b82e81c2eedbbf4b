"""The learned-model runner against MONAI's ``sliding_window_inference``: same network, patch, overlap, device.

    python bench/ai.py --learned-only [--device cuda] [--net unet|light] [--overlap 0.5] [--patch 64,128,128]

Three rows per case, each the best of ``--repeat`` runs, interleaved so that both sides see the same machine:
  * ``sliding window``: radview's ``sliding_window`` vs ``monai.inferers.sliding_window_inference`` on the
    same normalised (1, 1, Z, Y, X) tensor (Gaussian blending, sigma 0.125, same batch size);
  * ``runner end to end``: radview's whole learned-model run from a model folder (safetensors weights,
    normalisation, sliding window, argmax back to the image grid, output checks, through ``ai.engine.Engine``;
    the structure measurements are switched off) vs the same steps written with MONAI (normalise,
    ``sliding_window_inference``, argmax).
The networks are untrained (random weights, fixed seed); the U-Net's instance normalisation makes each
window's output depend on where the window lies, and radview spreads its windows evenly while MONAI steps
by a fixed interval, so the U-Net rows differ slightly between the two; the pointwise ``light`` net
shows that the blending itself agrees.
The runner stores the network channels-last (NDHWC, oneDNN's and cuDNN's fast 3D convolution layout), as any
user model gets it; MONAI's call gets the network as a user would pass it. The ``sliding window`` row gives
both sides the same plain network, so it compares the tiling and blending alone.
Throughput is input voxels per second; ratio = MONAI time / radview time (target >= 1.0: not slower).
The two label maps are compared too (they should agree on ~all voxels: same network, same blending).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

NETS = {"unet": (4, 8, 16), "light": (4,)}


def _net(kind: str):
    import torch

    from ai.runners.architectures import UNet3D

    torch.manual_seed(0)
    if kind == "light":  # 1x1x1 kernels, no pooling: the sliding-window machinery dominates
        return UNet3D(1, 3, NETS["light"], kernel_size=1, norm="none").eval()
    return UNet3D(1, 3, NETS[kind]).eval()


def _model_folder(root: Path, net, kind: str, patch, overlap: float) -> Path:
    from safetensors.torch import save_file

    folder = root / f"bench-{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(net.state_dict(), str(folder / "model.safetensors"))
    args = {"in_channels": 1, "out_channels": 3, "features": list(NETS[kind])}
    if kind == "light":
        args.update(kernel_size=1, norm="none")
    arg_lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in args.items())
    (folder / "model.toml").write_text(f"""\
id = "bench-{kind}"
name = "bench {kind}"
version = "0"
modality = "CT"
[labels]
1 = "a"
2 = "b"
[input]
patch_size = [{", ".join(map(str, patch))}]
overlap = {overlap}
[input.normalization]
kind = "ct"
clip = [-1000, 1000]
mean = 0.0
std = 1000.0
[network]
format = "safetensors"
file = "model.safetensors"
architecture = "unet3d"
[network.args]
{arg_lines}""")
    return folder


def _sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def run(case, device: str = "cpu", kind: str = "unet", patch=(64, 128, 128), overlap: float = 0.5,
        batch: int = 2, repeat: int = 2) -> list[tuple]:
    import torch
    from monai.inferers import sliding_window_inference

    from ai.api import InferenceRequest
    from ai.engine import Engine
    from ai.registry import Registry
    from ai.runners.base import RunContext
    from ai.runners.network import normalize
    from ai.runners.sliding_window import sliding_window

    name, array, grid = case
    dev = torch.device(device)
    net = _net(kind).to(dev)
    tmp = Path(tempfile.mkdtemp(prefix="radview-bench-"))
    registry = Registry(extra_dirs=[], builtin=False)
    manifest = registry.add_model_folder(_model_folder(tmp, _net(kind), kind, patch, overlap))
    engine = Engine(registry)
    spec = manifest.network
    request = InferenceRequest(array=array, grid=grid, model_id=manifest.id, device=device,
                               options={"batch_size": batch, "measure_structures": False})
    ctx = RunContext(dev, lambda f, m: None, batch_size=batch)
    voxels = float(np.prod(array.shape))

    def ours_window():
        image = normalize(torch.from_numpy(array).to(dev, torch.float32)[None], spec.normalization)
        out = sliding_window(net, image, patch, ctx, overlap=overlap, batch_size=batch, out_channels=3)
        _sync(dev)
        return out

    def monai_window():
        image = normalize(torch.from_numpy(array).to(dev, torch.float32)[None], spec.normalization)
        with torch.no_grad():
            out = sliding_window_inference(image[None], patch, batch, net, overlap=overlap, mode="gaussian",
                                           sigma_scale=0.125, sw_device=dev, device=dev, progress=False)
        _sync(dev)
        return out[0]

    def ours_runner():
        return engine.run(request).labels

    def monai_runner():
        return monai_window().argmax(0).to(torch.uint8).cpu().numpy()

    rows, outputs = [], {}
    for label, ours, theirs in (("sliding window", ours_window, monai_window),
                                ("runner end to end", ours_runner, monai_runner)):
        best = {"ours": float("inf"), "monai": float("inf")}
        for _ in range(repeat):
            for side, fn in (("ours", ours), ("monai", theirs)):
                t0 = time.perf_counter()
                outputs[(label, side)] = fn()
                best[side] = min(best[side], time.perf_counter() - t0)
        agree = _agreement(outputs[(label, "ours")], outputs[(label, "monai")])
        rows.append((name, label, best["ours"], best["monai"], voxels, agree))
        outputs.clear()
    engine.clear_cache()
    return rows


def _agreement(a, b) -> str:
    import torch

    if isinstance(a, torch.Tensor):
        return f"max |diff| {float((a.float() - b.float()).abs().max()):.2e}"
    return f"labels agree on {100.0 * float(np.mean(np.asarray(a) == np.asarray(b))):.4f} %"


def report(rows, kind: str, patch, overlap: float, batch: int, device: str) -> None:
    print(f"\nlearned runner vs MONAI sliding_window_inference: {kind} net {NETS[kind]}, patch "
          f"{'x'.join(map(str, patch))}, overlap {overlap}, batch {batch}, device {device}")
    print(f"  {'case':22} {'step':18} {'radview s':>10} {'MONAI s':>9} {'radview vox/s':>14} "
          f"{'MONAI vox/s':>12} {'ratio':>6}  check")
    for name, step, ours, theirs, voxels, agree in rows:
        ratio = theirs / ours
        verdict = (f"[{'MET' if ratio >= 1.0 else 'NOT MET'}: ratio >= 1.0]" if step == "runner end to end"
                   else "[tiling and blending alone, same plain network: parity expected]")
        print(f"  {name:22} {step:18} {ours:10.2f} {theirs:9.2f} {voxels / ours:14.3g} {voxels / theirs:12.3g} "
              f"{ratio:6.2f}  {agree}  {verdict}")
