"""The report's close-ups of the AI findings, without Qt: which ones, in which window, and what is said of the
ones the page has no room for.

* Order: highest score first; at most :data:`MAX_FINDING_IMAGES` are drawn, the page shows as many as fit
  (``viewer.logic.report_layout``) and names the others on one line (:func:`not_shown_line`) — none is left
  out silently.
* Window: a lung finding — one of a lung model, or lying in the lung (the model's own location, or a label
  named "lung…" under its centre) — is shown in the lung window (W 1500 / L -600); any other in the window of
  the key images (the series' own, unless a preset was chosen). "Under its centre" looks a few millimetres around
  it too: a nodule is a hole in a lung mask.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from viewer.core.window_presets import find_preset

MAX_FINDING_IMAGES = 12
_LUNG = find_preset("lung")
LUNG_WINDOW = (float(_LUNG.width), float(_LUNG.level), _LUNG.name)


@dataclass(frozen=True)
class FindingRef:
    """One detection of one result: its number in the result's table (N1 …) and where to look."""

    result: object  # report_content.AiResultRecord
    index: int  # in result.detections
    marker: object  # viewer.core.layers.Marker

    @property
    def detection(self) -> Mapping:
        return self.result.detections[self.index]

    @property
    def name(self) -> str:
        return f"N{self.index + 1}"

    @property
    def score(self) -> float:
        score = self.marker.score
        return float(score) if score is not None else 0.0


def ordered_findings(markers_found) -> list[FindingRef]:
    """``report_content.detection_markers`` output as refs, highest score first."""
    refs = [FindingRef(res, i, marker) for marker, res, i in markers_found]
    return sorted(refs, key=lambda r: -r.score)


def _words(value) -> str:
    return str(value or "").lower()


def is_lung_model(provenance) -> bool:
    get = provenance.get if isinstance(provenance, Mapping) else lambda key: getattr(provenance, key, "")
    return provenance is not None and any("lung" in _words(get(key)) for key in ("model_id", "model_name"))


def is_lung_finding(provenance, detection: Mapping, label_names_at_centre: Iterable[str] = ()) -> bool:
    """A finding of a lung model, or in the lung (its location, or a lung label under its centre)."""
    return (is_lung_model(provenance) or "lung" in _words(detection.get("location"))
            or any("lung" in _words(name) for name in label_names_at_centre))


def closeup_window(lung: bool, default: tuple[float, float, str]) -> tuple[float, float, str]:
    """(width, level, name) of a close-up: the lung window for a lung finding, else ``default``."""
    return LUNG_WINDOW if lung else default


def not_shown_line(refs: list[FindingRef]) -> str:
    """``2 more findings not shown: N5 (score 0.41), N6 (score 0.38) — all are in the table of AI findings``."""
    if not refs:
        return ""
    names = ", ".join(f"{r.name} (score {r.score:.2f})" for r in refs[:10]) + (", …" if len(refs) > 10 else "")
    n = len(refs)
    return (f"{n} more finding{'s' if n != 1 else ''} not shown as close-up{'s' if n != 1 else ''}: {names} — "
            f"all are in the table of AI findings")
