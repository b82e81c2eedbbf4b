"""Run one model on one request: device choice, model cache, GPU out-of-memory fallbacks, output checks.

Importing this module does not import torch; the first :meth:`Engine.run` does.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any, Optional

import numpy as np

from ai import code_consent
from ai.api import Cancelled, InferenceRequest, InferenceResult, ModelError, ProgressFn, Provenance
from ai.manifest import ManifestError, ModelManifest
from ai.registry import Registry, default_registry

OOM_SMALLER = "GPU out of memory: retried with one window at a time, blending in main memory"
OOM_CPU = "GPU out of memory: ran on the CPU instead"


def software_version() -> str:
    """``radview X, torch Y`` (torch must already be imported)."""
    import torch

    try:
        from importlib.metadata import version

        radview = version("radview")
    except Exception:  # not installed (running from a checkout)
        radview = "unknown"
    return f"radview {radview}, torch {torch.__version__}"


def _no_progress(fraction: float, message: str) -> None:
    pass


class Engine:
    """Runs models in this process; a loaded runner stays cached per (model id, device)."""

    def __init__(self, registry: Optional[Registry] = None):
        self._registry = registry
        self._runners: dict[tuple[str, str], Any] = {}
        self._lock = threading.RLock()

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = default_registry()
        return self._registry

    def cached_models(self) -> list[tuple[str, str]]:
        """``(model id, device)`` of the runners held in memory."""
        return sorted(self._runners)

    def clear_cache(self) -> None:
        with self._lock:
            devices = {key[1] for key in self._runners}
            self._runners.clear()
            if devices:
                from ai.runners.device import free_cached_memory

                for d in devices:
                    free_cached_memory(d)

    def warm_up(self) -> str:
        """Import torch and the device helpers now, so the first run starts at once; return the auto device."""
        from ai.runners.device import choose_device, describe_device

        self.registry.models()
        return describe_device(choose_device("auto"))

    def run(self, request: InferenceRequest, progress: Optional[ProgressFn] = None, cancel=None) -> InferenceResult:
        """Run ``request``; raise Cancelled, or ModelError with a message for the user."""
        progress = progress or _no_progress
        with self._lock:
            started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            t0 = time.perf_counter()
            manifest = self._manifest(request)
            code_consent.check(manifest, request)  # TorchScript runs only where the user allowed it
            messages = self._check_modality(manifest, request)
            progress(0.0, "loading model")
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled by the user")
            from ai.runners.device import describe_device, precision_name

            device = self._device(manifest, request.device)
            output, ctx, device = self._run_with_fallbacks(manifest, request, device, progress, cancel, messages)
            if ctx.cancelled():
                raise Cancelled("cancelled by the user")
            labels = self._checked_labels(manifest, request, output)
            detections = self._checked_detections(manifest, output)
            classification = self._checked_classification(manifest, output)
            names = dict(manifest.labels)
            names.update({int(k): str(v) for k, v in output.label_names.items() if int(k) in manifest.labels})
            structures, detections = self._measure(request, labels, names, detections, progress)
            parameters = manifest.resolve_parameters(request.options)
            parameters.update(output.parameters)
            provenance = Provenance(
                model_id=manifest.id, model_name=manifest.name, model_version=manifest.version,
                method=manifest.method, device=describe_device(device),
                precision=precision_name(device, ctx.mixed_precision), run_time_s=time.perf_counter() - t0,
                started_at=started_at, parameters=parameters, software=software_version())
            result = InferenceResult(grid=request.grid, provenance=provenance, labels=labels, label_names=names,
                                     detections=detections, messages=tuple(messages) + tuple(output.messages),
                                     structures=structures, classification=classification)
            progress(1.0, "done")
            return result

    # --- steps ------------------------------------------------------------------------------------------------
    @staticmethod
    def _measure(request: InferenceRequest, labels, names, detections, progress):
        """Shape and intensity features of each segmented structure and of the piece under each detection.

        ``options["measure_structures"] = False`` skips them (benchmarks compare bare inference).
        """
        if labels is None or not request.options.get("measure_structures", True):
            return (), detections
        from dataclasses import replace

        from ai.features import detection_features, label_features

        progress(0.99, "measuring structures")
        structures = tuple(label_features(labels, request.array, request.grid, names))
        measured = []
        for det in detections:
            f = detection_features(labels, request.array, request.grid, det.center_lps, names=names)
            if f is not None:
                extra = {"axial_diameter_mm": f.axial_diameter_mm, "diameter_3d_mm": f.diameter_3d_mm,
                         "sphericity": f.sphericity, "sd_hu": f.sd_hu, "segmented_volume_ml": f.volume_ml}
                det = replace(det, features={**det.features, **extra})
            measured.append(det)
        return structures, tuple(measured)

    def _manifest(self, request: InferenceRequest) -> ModelManifest:
        """The request's model; a user's model folder named in ``options["model_folder"]`` is added on first use."""
        try:
            return self.registry.get(request.model_id)
        except ModelError:
            folder = request.options.get("model_folder")
            if not folder:
                raise
        try:
            manifest = self.registry.add_model_folder(folder)
        except ManifestError as exc:
            raise ModelError(str(exc) if str(folder) in str(exc) else f"{folder}: {exc}") from None
        if manifest.id != request.model_id:
            raise ModelError(f"{folder} now holds model '{manifest.id}', not '{request.model_id}'")
        return manifest

    @staticmethod
    def _check_modality(manifest: ModelManifest, request: InferenceRequest) -> list[str]:
        have = (request.modality or "").strip().upper()
        wanted = manifest.modalities
        if not wanted:
            return []
        if not have:
            return [f"the series' modality is unknown: assumed {' or '.join(wanted)}"]
        if have not in wanted:
            raise ModelError(f"{manifest.name} works on {' or '.join(wanted)} images; this series is {have}")
        return []

    @staticmethod
    def _device(manifest: ModelManifest, requested: str):
        import torch

        from ai.runners.device import choose_device

        device = choose_device(requested)
        if device.type in manifest.supports:
            return device
        if (requested or "auto").strip().lower() == "auto" and "cpu" in manifest.supports:
            return torch.device("cpu")
        raise ModelError(f"{manifest.name} does not run on {device.type} (it supports {', '.join(manifest.supports)})")

    def _runner(self, manifest: ModelManifest, device):
        key = (manifest.id, str(device))
        runner = self._runners.get(key)
        if runner is None:
            cls = self.registry.load_runner_class(manifest)
            try:
                runner = cls(manifest, device)
            except (Cancelled, ModelError):
                raise
            except Exception as exc:
                from ai.runners.device import is_oom

                if is_oom(exc):
                    raise
                raise ModelError(f"{manifest.name} could not be loaded: {type(exc).__name__}: {exc}") from exc
            self._runners[key] = runner
        return runner

    def _run_with_fallbacks(self, manifest, request, device, progress, cancel, messages):
        import torch

        from ai.runners.base import RunContext, RunOutput
        from ai.runners.device import free_cached_memory, is_oom

        batch = int(request.options.get("batch_size", 0) or 0)
        mixed = bool(manifest.mixed_precision and request.options.get("mixed_precision", True))
        attempts = [(device, False, batch, None)]
        if device.type != "cpu":
            attempts.append((device, True, 1, OOM_SMALLER))
            if "cpu" in manifest.supports:
                attempts.append((torch.device("cpu"), False, batch, OOM_CPU))
        for i, (dev, stitch_on_cpu, bs, note) in enumerate(attempts):
            if note:
                messages.append(note)
            ctx = RunContext(dev, progress, cancel, mixed_precision=mixed and dev.type == "cuda",
                             stitch_on_cpu=stitch_on_cpu, batch_size=bs, lo=0.02, hi=0.98)
            try:
                runner = self._runner(manifest, dev)
                ctx.step(0.0, "running")
                output = runner.run(request, ctx)
                if not isinstance(output, RunOutput):
                    raise ModelError(f"{manifest.name} returned {type(output).__name__}, not a RunOutput")
                return output, ctx, dev
            except (Cancelled, ModelError):
                raise
            except Exception as exc:
                oom = is_oom(exc)
                if oom and i > 0 and (dev.type == "cpu" or i + 1 == len(attempts)):
                    raise ModelError(f"{manifest.name} ran out of memory, also with the fallbacks") from exc
                if not (oom and dev.type != "cpu" and i + 1 < len(attempts)):
                    raise ModelError(f"{manifest.name} failed: {type(exc).__name__}: {exc}") from exc
            free_cached_memory(dev)  # outside the except block: the traceback no longer holds tensors
        raise AssertionError("unreachable")

    @staticmethod
    def _checked_labels(manifest: ModelManifest, request: InferenceRequest, output) -> Optional[np.ndarray]:
        labels = output.labels
        if "labels" not in manifest.outputs:
            return None  # the manifest promises no label map: a stray one is dropped
        if labels is None:
            raise ModelError(f"{manifest.name} returned no label map")
        labels = np.asarray(labels)
        if tuple(labels.shape) != request.grid.shape_zyx:
            raise ModelError(f"{manifest.name} returned a label map of shape {tuple(labels.shape)}, "
                             f"not the image's {request.grid.shape_zyx}")
        if not np.issubdtype(labels.dtype, np.integer):
            raise ModelError(f"{manifest.name} returned {labels.dtype} labels, not integers")
        lo, hi = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
        known = max(manifest.labels, default=0)
        if lo < 0 or hi > known:
            raise ModelError(f"{manifest.name} returned label {lo if lo < 0 else hi}, which its manifest does not "
                             f"list ({', '.join(map(str, sorted(manifest.labels)))})")
        allowed = np.zeros(known + 1, dtype=bool)
        allowed[0] = True
        allowed[list(manifest.labels)] = True
        if not allowed.all():
            for z in range(0, labels.shape[0], 32):  # a lookup per block of slices: no full-size temporaries
                block = labels[z:z + 32]
                stray = block[~allowed[block]]
                if stray.size:
                    raise ModelError(f"{manifest.name} returned label(s) {sorted(set(stray.tolist()))[:10]} "
                                     "that its manifest does not list")
        dtype = np.uint8 if known < 256 else np.uint16
        return labels if labels.dtype == dtype else labels.astype(dtype)

    @staticmethod
    def _checked_classification(manifest: ModelManifest, output):
        """The runner's ClassificationResult, for the classes its manifest lists (None when it promises none)."""
        from ai.api import ClassificationResult

        found = getattr(output, "classification", None)
        if "classification" not in manifest.outputs:
            return None  # the manifest promises no classification: a stray one is dropped
        if not isinstance(found, ClassificationResult):
            raise ModelError(f"{manifest.name} returned no class probabilities")
        spec = manifest.classification
        if spec is not None and tuple(found.classes) != tuple(spec.classes):
            raise ModelError(f"{manifest.name} returned classes {', '.join(found.classes)}; its manifest lists "
                             f"{', '.join(spec.classes)}")
        return found

    @staticmethod
    def _checked_detections(manifest: ModelManifest, output) -> tuple:
        from ai.api import Detection

        detections = tuple(output.detections or ())
        if any(not isinstance(d, Detection) for d in detections):
            raise ModelError(f"{manifest.name} returned detections that are not Detection records")
        return detections
