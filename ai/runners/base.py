"""What a runner receives and returns (torch is imported by the caller, not here).

A runner is a class registered in :mod:`ai.runner_names` and named in a model manifest (``runner = "ct-lungs"``).
The engine constructs it once per (model, device) and caches it::

    runner = RunnerClass(manifest, device)      # load weights here, once
    output = runner.run(request, ctx)          # called for each job

``ctx.step(fraction, message)`` reports progress and raises ``Cancelled`` when
the user cancelled; call it at least once per second of work (per window batch).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ai.api import Cancelled, ClassificationResult, Detection, ProgressFn


@dataclass
class RunContext:
    device: Any  # torch.device
    progress: ProgressFn
    cancel: Any = None  # anything with is_set(): threading.Event, multiprocessing.Event
    mixed_precision: bool = False  # autocast float16/bfloat16 on GPU
    stitch_on_cpu: bool = False  # keep sliding-window accumulators in host memory
    batch_size: int = 0  # 0 = the model's default
    lo: float = 0.0  # this run's slice of the overall progress bar
    hi: float = 1.0

    def cancelled(self) -> bool:
        return bool(self.cancel is not None and self.cancel.is_set())

    def check_cancel(self) -> None:
        if self.cancelled():
            raise Cancelled("cancelled by the user")

    def step(self, fraction: float, message: str = "") -> None:
        """Report ``fraction`` (0..1) of this runner's work; raise Cancelled if asked to stop."""
        self.check_cancel()
        f = min(max(float(fraction), 0.0), 1.0)
        self.progress(self.lo + (self.hi - self.lo) * f, message)

    def sub(self, lo: float, hi: float) -> "RunContext":
        """A context whose 0..1 maps to ``lo..hi`` of this one."""
        span = self.hi - self.lo
        return RunContext(self.device, self.progress, self.cancel, self.mixed_precision, self.stitch_on_cpu,
                          self.batch_size, self.lo + span * lo, self.lo + span * hi)


@dataclass
class RunOutput:
    labels: Optional[np.ndarray] = None  # integer (z, y, x) on the request grid
    label_names: dict[int, str] = field(default_factory=dict)
    detections: list[Detection] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)  # what was used, for the provenance
    messages: list[str] = field(default_factory=list)
    classification: Optional[ClassificationResult] = None  # a classifier's class probabilities
