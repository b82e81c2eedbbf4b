"""Small torch runners for the engine tests, and a helper that writes their manifests.

The runners are registered as an installed package would register them (a manifest cannot name a module): an
entry point per runner in the group ``radview.runners`` of a ``*.dist-info`` folder put on ``sys.path``
(:func:`install_runners`; a subprocess gets it through ``PYTHONPATH``, see :func:`subprocess_env`).
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ai.api import Detection
from ai.runners.base import RunContext, RunOutput

HERE = Path(__file__).resolve().parent


class _Base:
    loads = 0  # per class, in this process

    def __init__(self, manifest, device):
        self.manifest = manifest
        self.device = device
        type(self).loads += 1

    def info(self, ctx: RunContext) -> dict:
        return {"pid": os.getpid(), "device_seen": str(ctx.device), "stitch_on_cpu": ctx.stitch_on_cpu,
                "batch_size": ctx.batch_size, "viewer_imported": any(m.split(".")[0] == "viewer" for m in sys.modules),
                "qt_imported": any(m.startswith("PySide6") for m in sys.modules), "loads": type(self).loads}


class ThresholdModel(_Base):
    """label 1 where the image is above ``threshold``; a detection at the brightest voxel."""

    def run(self, request, ctx: RunContext) -> RunOutput:
        params = self.manifest.resolve_parameters(request.options)
        x = torch.from_numpy(np.asarray(request.array)).to(ctx.device)
        for i in range(4):
            ctx.step(i / 4, f"part {i + 1}/4")
        labels = (x > float(params["threshold"])).to(torch.uint8).cpu().numpy()
        k = np.unravel_index(int(np.argmax(request.array)), request.array.shape)
        det = Detection(center_lps=tuple(request.grid.index_to_world(k)), diameter_mm=4.0, volume_ml=0.03,
                        mean_hu=float(request.array[k]), kind="solid", score=0.9, location="lung_left")
        return RunOutput(labels=labels, detections=[det] if "detections" in self.manifest.outputs else [],
                         parameters=self.info(ctx))


class SlowModel(_Base):
    """Sleeps ``seconds`` in small steps, calling ctx.step (cooperative cancel)."""

    def run(self, request, ctx: RunContext) -> RunOutput:
        seconds = float(request.options.get("seconds", 5.0))
        n = max(int(seconds / 0.02), 1)
        for i in range(n):
            ctx.step(i / n, f"sleeping {i}/{n}")
            time.sleep(0.02)
        return RunOutput(labels=np.zeros(request.grid.shape_zyx, np.uint8), parameters=self.info(ctx))


class StubbornModel(_Base):
    """Sleeps without ever calling ctx.step: only killing the process stops it."""

    def run(self, request, ctx: RunContext) -> RunOutput:
        ctx.progress(0.5, "not listening")
        time.sleep(float(request.options.get("seconds", 30.0)))
        return RunOutput(labels=np.zeros(request.grid.shape_zyx, np.uint8), parameters=self.info(ctx))


class FailingModel(_Base):
    def run(self, request, ctx: RunContext) -> RunOutput:
        ctx.step(0.1, "about to fail")
        raise ValueError("boom")


class OomModel(_Base):
    """Runs out of 'GPU' memory unless stitching on the CPU (``oom_until_cpu``: unless on the CPU; ``oom_always``)."""

    def run(self, request, ctx: RunContext) -> RunOutput:
        if request.options.get("oom_always"):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if ctx.device.type != "cpu" and (not ctx.stitch_on_cpu or request.options.get("oom_until_cpu")):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return RunOutput(labels=np.zeros(request.grid.shape_zyx, np.uint8), parameters=self.info(ctx))


class BadOutputModel(_Base):
    """Returns whatever ``request.options['bad']`` asks for: a wrong shape, floats or an unknown label."""

    def run(self, request, ctx: RunContext) -> RunOutput:
        shape = request.grid.shape_zyx
        bad = request.options.get("bad", "shape")
        if bad == "shape":
            return RunOutput(labels=np.zeros((shape[0] + 1, *shape[1:]), np.uint8))
        if bad == "float":
            return RunOutput(labels=np.zeros(shape, np.float32))
        labels = np.zeros(shape, np.uint8)
        labels[0, 0, 0] = 9
        return RunOutput(labels=labels)


MANIFEST = """\
id = "{id}"
name = "{name}"
version = "0.1"
modality = "{modality}"
method = "test model"
description = "a model for the tests"
runner = "fake-{cls}"
outputs = {outputs}

[labels]
1 = "bright"
3 = "other"

[input]
intensity = "HU"
patch_size = [8, 8, 8]
overlap = 0.5

[device]
supports = ["cuda", "mps", "cpu"]
mixed_precision = true
min_gpu_memory_gb = 0.5

[parameters]
threshold = 100
"""

FAKES = {
    "test-threshold": ("ThresholdModel", '["labels", "detections"]'),
    "test-slow": ("SlowModel", '["labels"]'),
    "test-stubborn": ("StubbornModel", '["labels"]'),
    "test-failing": ("FailingModel", '["labels"]'),
    "test-oom": ("OomModel", '["labels"]'),
    "test-bad": ("BadOutputModel", '["labels"]'),
    "test-detect": ("ThresholdModel", '["detections"]'),
}


DIST = "radview_test_fake_runners"
RUNNERS = ("ThresholdModel", "SlowModel", "StubbornModel", "FailingModel", "OomModel", "BadOutputModel")


def install_runners(site: Path, runners: dict[str, str], dist: str = DIST) -> Path:
    """Register ``{name: "module:Class"}`` as entry points (group radview.runners) of a package in ``site``.

    ``site`` is put on ``sys.path`` (spawned engine processes inherit it); nothing is installed for real.
    """
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[radview.runners]\n" + "".join(f"{k} = {v}\n" for k, v in runners.items()))
    if str(site) not in sys.path:
        sys.path.append(str(site))
    return site


def site_for(folder: Path) -> Path:
    """Where :func:`write_manifests` registers the fake runners for the models in ``folder``."""
    return folder.parent / f"{folder.name}-site"


def write_manifests(folder: Path) -> Path:
    """Write one manifest per fake model (and an MR-only one) into ``folder``; register the fake runners."""
    install_runners(site_for(folder), {f"fake-{cls}": f"fake_models:{cls}" for cls in RUNNERS})
    folder.mkdir(parents=True, exist_ok=True)
    for model_id, (cls, outputs) in FAKES.items():
        text = MANIFEST.format(id=model_id, name=f"Test {cls}", modality="CT", cls=cls, outputs=outputs)
        (folder / f"{model_id}.toml").write_text(text)
    mr = MANIFEST.format(id="test-mr", name="Test MR model", modality="MR", cls="ThresholdModel", outputs='["labels"]')
    (folder / "test-mr.toml").write_text(mr)
    return folder


def subprocess_env(folder: Path) -> dict[str, str]:
    """Environment for a subprocess that must find the fake models."""
    root = HERE.parents[1]
    path = os.pathsep.join([str(root), str(HERE), str(site_for(folder)),
                            os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return dict(os.environ, RADVIEW_MODELS_DIR=str(folder), PYTHONPATH=path)


# --- engine process entry points that fail to start (EngineClient.child_main) ------------------------------
def exit_at_start(conn, cancel_event, env) -> None:
    os._exit(3)


def fatal_at_start(conn, cancel_event, env) -> None:
    conn.send(("fatal", 0, "ImportError: no module named 'torch'"))


def silent_at_start(conn, cancel_event, env) -> None:
    time.sleep(30)
