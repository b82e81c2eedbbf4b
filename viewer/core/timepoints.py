"""The time axis of a 4D series: how many time points, what varies between them, and how to say time point t.

A 4D series repeats every slice position (perfusion, DCE, cardiac phases, pCASL label/control pairs, diffusion
b-values); ``viewer.io.slice_stack`` groups its images by position into time points, each sorted by its
temporal key (TemporalPositionIdentifier, AcquisitionNumber, TriggerTime, InstanceNumber). :func:`time_axis`
reads, from the first image of each time point, which of the attributes that tell time points apart varies:
the b-value (when the header reader gives one), the echo, the temporal position, the trigger time or the
acquisition number — the first that varies names the time points ("trigger 350 ms").
"""
from __future__ import annotations

from dataclasses import dataclass

#: (name, unit) of the attributes that tell time points apart, in the order they name a time point
ATTRIBUTES = (("b-value", "s/mm²"), ("echo", ""), ("temporal position", ""), ("trigger time", "ms"),
              ("acquisition", ""))
_SHORT = {"b-value": "b", "echo": "echo", "temporal position": "TPI", "trigger time": "trigger",
          "acquisition": "acq"}


def _attributes(frame) -> dict:
    """The values of :data:`ATTRIBUTES` of one image (None where the header does not say)."""
    key = tuple(getattr(frame, "temporal_key", ()) or ())
    classic = len(key) == 4 and getattr(getattr(frame, "file", None), "number_of_frames", 1) == 1
    return {
        "b-value": getattr(frame, "b_value", None),
        "echo": getattr(frame, "echo", None),
        # (the temporal key holds 0 where the attribute is absent: such a value never varies)
        "temporal position": getattr(frame, "temporal_position", None) or (key[0] if classic else None),
        "trigger time": getattr(frame, "trigger_time", None) or (key[2] if classic else None),
        "acquisition": getattr(frame, "acquisition", None),
    }


def _number(value) -> str:
    v = float(value)
    return f"{v:.0f}" if abs(v - round(v)) < 0.05 else f"{v:.1f}"


@dataclass(frozen=True)
class TimeAxis:
    """``n`` time points; ``varies``: the attributes that differ between them (:data:`ATTRIBUTES` names, in that
    order; empty when the headers do not tell them apart); ``values``: per time point, the first one's value."""

    n: int
    varies: tuple[str, ...] = ()
    values: tuple = ()

    @property
    def name(self) -> str:
        """What the time points are: "trigger time", "temporal position" … or "time point"."""
        return self.varies[0] if self.varies else "time point"

    def value_text(self, t: int) -> str:
        """"trigger 350 ms", "TPI 2", "b 1000 s/mm²" ("" when nothing varies)."""
        if not self.varies or not 0 <= t < len(self.values) or self.values[t] is None:
            return ""
        unit = dict(ATTRIBUTES)[self.varies[0]]
        return f"{_SHORT[self.varies[0]]} {_number(self.values[t])}" + (f" {unit}" if unit else "")

    def text(self, t: int) -> str:
        """"Time 2/3 · TPI 2": time point ``t`` (from 0) as the corner and the toolbar say it."""
        value = self.value_text(t)
        return f"Time {int(t) + 1}/{self.n}" + (f" · {value}" if value else "")

    def describe(self) -> str:
        """"3 time points (temporal position)" — for the index and the status bar."""
        return f"{self.n} time points" + (f" ({', '.join(self.varies)})" if self.varies else "")

    def value_range(self) -> str:
        """What the named attribute spans: "0–1000 s/mm²", "0–800 ms", "1–3"; "" when it has no values, and for the
        temporal position and the acquisition (their range is only the count again)."""
        if not self.varies or self.varies[0] in ("temporal position", "acquisition"):
            return ""
        known = [float(v) for v in self.values if v is not None]
        if not known:
            return ""
        unit = dict(ATTRIBUTES)[self.varies[0]]
        lo, hi = min(known), max(known)
        span = _number(lo) if lo == hi else f"{_number(lo)}–{_number(hi)}"
        return span + (f" {unit}" if unit else "")

    def varies_text(self) -> str:
        """What varies and over what: "b-value 0–1000 s/mm²", "trigger time 0–800 ms", "temporal position"; ""
        when the headers do not tell the time points apart."""
        if not self.varies:
            return ""
        span = self.value_range()
        return self.varies[0] + (f" {span}" if span else "")

    def summary(self) -> str:
        """"4D: 12 time points (b-value 0–1000 s/mm²)", "4D: 20 time points (trigger time 0–800 ms)", "4D: 3 time
        points (temporal position)" — what the study browser says of a 4D series, from its headers."""
        varies = self.varies_text()
        return f"4D: {self.n} time points" + (f" ({varies})" if varies else "")

    def cine_interval_ms(self, default: int = 200) -> int:
        """The interval between time points when they play: the trigger times' (a cardiac cycle in real time),
        else ``default``; 30 to 1000 ms."""
        if self.varies and self.varies[0] == "trigger time" and self.n > 1:
            known = [float(v) for v in self.values if v is not None]
            if len(known) == self.n and known[-1] > known[0]:
                return int(min(1000, max(30, (known[-1] - known[0]) / (self.n - 1))))
        return default


def time_axis(frames_by_timepoint) -> TimeAxis:
    """The time axis of a 4D series from its images per time point (``StackPlan.frames``: ``[t][slice]``)."""
    firsts = [frames[0] for frames in frames_by_timepoint if frames]
    n = len(firsts)
    if n < 2:
        return TimeAxis(max(n, 1))
    attrs = [_attributes(frame) for frame in firsts]
    varies = tuple(name for name, _unit in ATTRIBUTES
                   if len({a[name] for a in attrs}) > 1 and all(a[name] is not None for a in attrs))
    values = tuple(a[varies[0]] for a in attrs) if varies else ()
    return TimeAxis(n, varies, values)


def single(n: int = 1) -> TimeAxis:
    """The axis of a series whose time points nothing tells apart (or of a 3D volume)."""
    return TimeAxis(max(int(n), 1))
