"""Fake AI models for the GUI tests: quick numpy runners (no torch) the real engine loads from a manifest.

``write_manifests(folder)`` writes one TOML manifest per model into ``folder`` and registers the runners as an
installed package would (a manifest cannot name a module): entry points ``qtfake-<Class>`` in the group
``radview.runners`` of a ``*.dist-info`` folder beside ``folder``, put on ``sys.path`` with this folder (the engine
child is started with multiprocessing's "spawn", which hands it the parent's ``sys.path``; another process would need
both folders on ``PYTHONPATH``). The names differ from tests/ai's ``fake-<Class>`` runners: both packages can be on
``sys.path`` in one test session, and an entry point name must name one runner.
Point ``RADVIEW_MODELS_DIR`` at ``folder`` before the engine starts.
Each runner reports progress through ``ctx.step`` (which raises ``Cancelled`` when asked to stop).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from ai.api import Detection
from ai.runners.base import RunOutput

HERE = Path(__file__).resolve().parent
DIST = "radview_qt_test_fake_runners"

#: where the fake nodules sit, as fractions of the grid (z, y, x), with their diameters (mm)
NODULES = (((0.50, 0.45, 0.30), 12.0, "solid", 0.93, "lung_right"),
           ((0.35, 0.55, 0.70), 7.0, "subsolid", 0.61, "lung_left"),
           ((0.65, 0.40, 0.65), 18.0, "solid", 0.88, "lung_left"))


def _option(request, manifest, name, default):
    return type(default)(request.options.get(name, getattr(manifest, "parameters", {}).get(name, default)))


def _walk(ctx, steps: int, seconds: float, what: str) -> None:
    for i in range(steps):
        ctx.step(i / steps, f"{what} {i + 1}/{steps}")
        time.sleep(seconds / steps)


class _Fake:
    def __init__(self, manifest, device):
        self.manifest, self.device = manifest, device


class FakeLungs(_Fake):
    """Air below -400 HU inside the grid: left half of the patient = lung_left (2), right half = lung_right (3)."""

    def run(self, request, ctx):
        seconds = _option(request, self.manifest, "duration_s", 1.5)
        _walk(ctx, 10, seconds, "lungs: components")
        a = request.array
        labels = np.zeros(a.shape, np.uint8)
        air = a < -400
        x_left = request.grid.patient_left_axis()[2] > 0  # +x index is toward the patient's left
        half = a.shape[2] // 2
        left_cols = slice(half, None) if x_left else slice(None, half)
        right_cols = slice(None, half) if x_left else slice(half, None)
        labels[:, :, left_cols][air[:, :, left_cols]] = 2
        labels[:, :, right_cols][air[:, :, right_cols]] = 3
        ctx.step(1.0, "lungs: done")
        return RunOutput(labels=labels, label_names={2: "lung_left", 3: "lung_right"},
                         parameters={"duration_s": seconds, "threshold_hu": -400},
                         messages=["fake model: no GPU here, ran on the CPU"])


class FakeNodules(_Fake):
    """Three spheres at fixed fractions of the grid, as nodule detections and a label map (8)."""

    def run(self, request, ctx):
        seconds = _option(request, self.manifest, "duration_s", 0.5)
        _walk(ctx, 5, seconds, "nodules: candidates")
        grid = request.grid
        shape = np.asarray(grid.shape_zyx)
        labels = np.zeros(grid.shape_zyx, np.uint8)
        zz, yy, xx = np.ogrid[tuple(slice(0, n) for n in grid.shape_zyx)]
        sz, sy, sx = grid.spacing_zyx
        detections = []
        for frac, diameter, kind, score, location in NODULES:
            idx = np.round(np.asarray(frac) * (shape - 1))
            r = diameter / 2
            ball = ((zz - idx[0]) * sz) ** 2 + ((yy - idx[1]) * sy) ** 2 + ((xx - idx[2]) * sx) ** 2 <= r * r
            labels[ball] = 8
            values = request.array[ball]
            detections.append(Detection(tuple(grid.index_to_world(idx)), diameter,
                                        float(ball.sum()) * grid.voxel_volume_ml, float(values.mean()), kind, score,
                                        "nodule", location))
        ctx.step(1.0, "nodules: done")
        return RunOutput(labels=labels, label_names={8: "nodule"}, detections=detections,
                         parameters={"duration_s": seconds})


class SlowModel(_Fake):
    """Reports progress every 50 ms for a minute (to be cancelled)."""

    def run(self, request, ctx):
        _walk(ctx, 1200, 60.0, "slow: step")
        return RunOutput(labels=np.zeros(request.grid.shape_zyx, np.uint8), label_names={1: "nothing"})


class FailingModel(_Fake):
    def run(self, request, ctx):
        ctx.step(0.1, "failing: about to fail")
        raise RuntimeError("the fake model broke on purpose (phantom exploded)")


MANIFESTS = {
    "fake-lungs": ("Fake lungs", "FakeLungs", ["labels"], {2: "lung_left", 3: "lung_right"}, {"duration_s": 1.5}),
    "fake-nodules": ("Fake nodules", "FakeNodules", ["labels", "detections"], {8: "nodule"}, {"duration_s": 0.5}),
    "fake-slow": ("Fake slow", "SlowModel", ["labels"], {1: "nothing"}, {}),
    "fake-failing": ("Fake failing", "FailingModel", ["labels"], {1: "nothing"}, {}),
    "fake-mr": ("Fake MR only", "FakeLungs", ["labels"], {1: "brain"}, {}),
}


def install_runners(site: Path, runners: dict[str, str], dist: str = DIST) -> Path:
    """Register ``{name: "module:Class"}`` as entry points (group radview.runners) of a package in ``site``.

    ``site`` and this folder (the runners' module) go on ``sys.path``; nothing is installed for real.
    """
    info = Path(site) / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[radview.runners]\n" + "".join(f"{k} = {v}\n" for k, v in runners.items()))
    for path in (str(HERE), str(site)):
        if path not in sys.path:
            sys.path.append(path)
    return Path(site)


def site_for(folder: str | Path) -> Path:
    """Where :func:`write_manifests` registers the fake runners for the models in ``folder``."""
    folder = Path(folder)
    return folder.parent / f"{folder.name}-site"


def write_manifests(folder: str | Path) -> Path:
    folder = Path(folder)
    install_runners(site_for(folder), {f"qtfake-{cls}": f"ai_fake_models:{cls}"
                                       for cls in sorted({spec[1] for spec in MANIFESTS.values()})})
    folder.mkdir(parents=True, exist_ok=True)
    for model_id, (name, cls, outputs, labels, params) in MANIFESTS.items():
        lines = [f'id = "{model_id}"', f'name = "{name}"', 'version = "0.1"',
                 f'modality = "{"MR" if model_id == "fake-mr" else "CT"}"',
                 'method = "classical image analysis, not a learned network"',
                 f'description = "A fake model for the GUI tests ({cls})."',
                 f'runner = "qtfake-{cls}"',
                 "outputs = [" + ", ".join(f'"{o}"' for o in outputs) + "]", "", "[labels]"]
        lines += [f'{k} = "{v}"' for k, v in labels.items()]
        lines += ["", "[device]", 'supports = ["cpu"]', "", "[parameters]"]
        lines += [f"{k} = {v}" for k, v in params.items()]
        (folder / f"{model_id}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
