"""Review of AI results: accept or reject each finding and each result as a whole, Qt-free.

An AI *result* is the layers one model run added to the session (a label layer and/or a marker layer
sharing one ``meta["provenance"]`` object), or a classification model's answer (``session.classifications``;
no layers: it is decided on as a whole, like a label map). A user decides on

* each **detection** of the result (a row of the findings panel, a marker in the views), and
* the **result as a whole** (its label map, when it has one).

The decisions live in the study's review table, ``AnnotationSet.review`` (kept on disk by the
annotation autosave, one JSON file per study), as ``{finding key: entry}``. Keys are stable across
runs, so a decision comes back when the study is reopened and the model is run again:

* a detection: ``detection|<model id>|<series UID>|<x>,<y>,<z>``, its centre in LPS millimetres
  rounded to 0.1 mm (``-0.0`` written as ``0.0``), e.g. ``detection|ct-lung-nodules|1.2.3|-61.3,24.0,-101.5``;
* the result as a whole: ``result|<model id>|<series UID>``.

An entry is ``{"state": "accepted" | "rejected", "user", "time", "kind": "detection" | "result",
"model_id", "model_version", "series_uid", ...}``; a detection's entry also holds ``index`` (0-based,
its place in the result's detections), ``center_lps`` and ``text`` (e.g. "N1 12 mm solid"); a result's
entry holds ``revision``, the label map's content revision it was decided on ("0": as the model made
it; each brush stroke makes a new one, see :mod:`.label_edit`), and ``edited_by`` / ``edited_at``
when it had been edited. ``user`` is the OS account name, ``time`` local ISO 8601 with its UTC offset.
An entry of another model version, or a result decision on another revision of the label map (edited
since, or a fresh run after edits that were not saved) does not apply: that finding is not reviewed.

A result is *reviewed* once the result is accepted and every detection of it is decided; its header
then reads "reviewed by <user> at <time> — not a diagnosis" (the last decision's user and time).
Decisions go through the annotations' undo stack (Ctrl+Z / Ctrl+Y), one command per user action.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Mapping

from viewer.core.ai_bridge import NOT_REVIEWED
from viewer.core.annotations import current_user

ACCEPTED, REJECTED = "accepted", "rejected"
STATES = (ACCEPTED, REJECTED)
#: what a finding's review state reads as in the findings table
STATE_TEXT = {ACCEPTED: "✓ accepted", REJECTED: "✗ rejected", None: "not reviewed"}
#: the revision of a label map as the model made it (brush strokes make new ones)
ORIGINAL_REVISION = "0"
DIAGNOSIS_NOTE = "not a diagnosis"


def local_now_iso() -> str:
    """Now, local time, ISO 8601 with the UTC offset (e.g. ``2026-03-01T10:22:33+01:00``)."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _mm(value: float) -> str:
    r = round(float(value), 1)
    return f"{0.0 if r == 0 else r:.1f}"


def detection_key(model_id: str, series_uid: str, center_lps) -> str:
    return f"detection|{model_id}|{series_uid}|{','.join(_mm(v) for v in center_lps)}"


def result_key(model_id: str, series_uid: str) -> str:
    return f"result|{model_id}|{series_uid}"


def label_revision(layer) -> str:
    return str(layer.meta.get("revision", ORIGINAL_REVISION)) if layer is not None else ""


@dataclass(eq=False)
class AiResult:
    """The layers of one AI run shown over the series."""

    provenance: object
    label_layer: object = None
    marker_layer: object = None
    series_uid: str = ""
    classified: object = None  # ai_bridge.ClassifiedSeries of a classification model (no layers)

    @property
    def classification(self):
        """The ``ai.api.ClassificationResult`` of a classification model's result, else None."""
        return getattr(self.classified, "classification", None)

    @property
    def model_id(self) -> str:
        return str(getattr(self.provenance, "model_id", ""))

    @property
    def model_version(self) -> str:
        return str(getattr(self.provenance, "model_version", ""))

    @property
    def name(self) -> str:
        return str(getattr(self.provenance, "model_name", "") or self.model_id)

    @property
    def layers(self) -> list:
        return [layer for layer in (self.label_layer, self.marker_layer) if layer is not None]

    @property
    def detections(self) -> tuple:
        return tuple(self.marker_layer.meta.get("detections", ())) if self.marker_layer is not None else ()

    @property
    def key(self) -> str:
        return result_key(self.model_id, self.series_uid)

    def detection_key(self, index: int) -> str:
        return detection_key(self.model_id, self.series_uid, self.detections[index].center_lps)

    def detection_keys(self) -> list[str]:
        return [self.detection_key(i) for i in range(len(self.detections))]

    @property
    def edited(self) -> bool:
        return self.label_layer is not None and bool(self.label_layer.meta.get("edited_by"))


def _series_uid(session) -> str:
    opened = getattr(session, "volume", None) or getattr(session, "images", None)
    return str((opened.meta or {}).get("series_uid", "") or "") if opened is not None else ""


def ai_results(session) -> list[AiResult]:
    """The AI results over the session's series, in the order their layers were added."""
    out: list[AiResult] = []
    series = _series_uid(session)
    for layer in session.layers:
        prov = getattr(layer, "meta", {}).get("provenance")
        if prov is None:
            continue
        result = next((r for r in out if r.provenance is prov), None)
        if result is None:
            result = AiResult(prov, series_uid=series)
            out.append(result)
        if hasattr(layer, "label_map"):
            result.label_layer = result.label_layer or layer
        else:
            result.marker_layer = result.marker_layer or layer
    for classified in getattr(session, "classifications", ()):
        out.append(AiResult(classified.provenance, series_uid=classified.series_uid or series, classified=classified))
    return out


def result_of_layer(session, layer) -> AiResult | None:
    return next((r for r in ai_results(session) if layer in r.layers), None)


# --- reading decisions ----------------------------------------------------------------------------------
def _applies(result: AiResult, entry, whole: bool) -> bool:
    if not isinstance(entry, Mapping) or entry.get("state") not in STATES:
        return False
    version = entry.get("model_version")
    if version not in (None, "") and str(version) != result.model_version:
        return False
    if whole and result.label_layer is not None:
        return str(entry.get("revision", ORIGINAL_REVISION)) == label_revision(result.label_layer)
    return True


def finding_entry(review: Mapping, result: AiResult, index: int) -> dict | None:
    """The decision on detection ``index`` of ``result`` (None: not reviewed)."""
    entry = review.get(result.detection_key(index))
    return dict(entry) if _applies(result, entry, whole=False) else None


def result_entry(review: Mapping, result: AiResult) -> dict | None:
    """The decision on the result as a whole (None: not reviewed, or decided on another revision)."""
    entry = review.get(result.key)
    return dict(entry) if _applies(result, entry, whole=True) else None


def finding_states(review: Mapping, result: AiResult) -> list[str | None]:
    """Each detection's own state ("accepted", "rejected" or None)."""
    return [(finding_entry(review, result, i) or {}).get("state") for i in range(len(result.detections))]


def shown_states(review: Mapping, result: AiResult) -> list[str | None]:
    """Each detection's state as drawn: its own decision, else "rejected" when the whole result is rejected."""
    whole = (result_entry(review, result) or {}).get("state")
    return [state or (REJECTED if whole == REJECTED else None) for state in finding_states(review, result)]


@dataclass(frozen=True)
class ResultStatus:
    """Where the review of one result stands."""

    state: str  # "not reviewed" | "in review" | "reviewed" | "rejected"
    decided: int  # detections decided
    total: int  # detections
    result_state: str | None  # the decision on the result as a whole
    user: str = ""
    time: str = ""
    edited_by: str = ""
    edited_at: str = ""

    @property
    def header(self) -> str:
        return header_text(self)


def latest_entry(entries: list[dict]) -> dict:
    """The most recent of some review entries (by their ISO time); ``{}`` for none."""
    def when(entry):
        try:
            return datetime.fromisoformat(str(entry.get("time", ""))).timestamp()
        except (TypeError, ValueError):
            return float("-inf")

    return max(entries, key=when) if entries else {}


def result_status(review: Mapping, result: AiResult) -> ResultStatus:
    whole = result_entry(review, result)
    findings = [finding_entry(review, result, i) for i in range(len(result.detections))]
    decided = [e for e in findings if e is not None]
    edited_by = str(result.label_layer.meta.get("edited_by", "")) if result.edited else ""
    edited_at = str(result.label_layer.meta.get("edited_at", "")) if result.edited else ""
    state_whole = whole.get("state") if whole else None
    if state_whole == REJECTED:
        state, last = "rejected", whole
    elif state_whole == ACCEPTED and len(decided) == len(findings):
        state, last = "reviewed", latest_entry([whole, *decided])
    elif whole or decided:
        state, last = "in review", latest_entry([e for e in (whole, *decided) if e])
    else:
        state, last = "not reviewed", {}
    return ResultStatus(state, len(decided), len(findings), state_whole, str(last.get("user", "")),
                        str(last.get("time", "")), edited_by, edited_at)


def header_text(status: ResultStatus) -> str:
    """The line shown with a result: "AI result, not reviewed — not a diagnosis" until it is reviewed."""
    if status.state == "reviewed":
        return f"reviewed by {status.user} at {status.time} — {DIAGNOSIS_NOTE}"
    if status.state == "rejected":
        return f"AI result rejected by {status.user} at {status.time} — {DIAGNOSIS_NOTE}"
    if status.state == "in review":
        parts = []
        if status.total:
            parts.append(f"{status.decided} of {status.total} findings decided")
        parts.append("result accepted" if status.result_state == ACCEPTED else "result not yet accepted")
        return f"AI result, not reviewed ({', '.join(parts)}) — {DIAGNOSIS_NOTE}"
    return NOT_REVIEWED


# --- deciding -------------------------------------------------------------------------------------------
def _base_entry(result: AiResult, state: str, kind: str, user: str | None, time: str | None) -> dict:
    if state not in STATES:
        raise ValueError(f"a review state is one of {STATES}, got {state!r}")
    return {"state": state, "user": user or current_user(), "time": time or local_now_iso(), "kind": kind,
            "model_id": result.model_id, "model_version": result.model_version, "series_uid": result.series_uid}


def finding_entry_for(result: AiResult, index: int, state: str, user: str | None = None,
                      time: str | None = None) -> dict:
    det = result.detections[index]
    entry = _base_entry(result, state, "detection", user, time)
    entry.update({"index": int(index), "center_lps": [float(v) for v in det.center_lps]})
    markers = getattr(result.marker_layer, "markers", ())
    if index < len(markers):
        entry["text"] = markers[index].text
    return entry


def result_entry_for(result: AiResult, state: str, user: str | None = None, time: str | None = None) -> dict:
    entry = _base_entry(result, state, "result", user, time)
    if result.label_layer is not None:
        entry["revision"] = label_revision(result.label_layer)
        if result.edited:
            entry["edited_by"] = str(result.label_layer.meta.get("edited_by", ""))
            entry["edited_at"] = str(result.label_layer.meta.get("edited_at", ""))
    return entry


def decide_findings(annotations, result: AiResult, indices, state: str | None, user: str | None = None,
                    time: str | None = None) -> None:
    """Accept, reject (``state``) or clear (``None``) detections of ``result``: one undoable command."""
    indices = list(indices)
    if not indices:
        return
    changes = {result.detection_key(i): (None if state is None else finding_entry_for(result, i, state, user, time))
               for i in indices}
    what = {ACCEPTED: "accept", REJECTED: "reject", None: "clear review of"}[state]
    n = len(indices)
    annotations.decide(changes, f"{what} {'finding' if n == 1 else f'{n} findings'}")


def decide_result(annotations, result: AiResult, state: str | None, user: str | None = None,
                  time: str | None = None) -> None:
    """Accept, reject (``state``) or clear (``None``) the result as a whole: one undoable command."""
    entry = None if state is None else result_entry_for(result, state, user, time)
    what = {ACCEPTED: "accept", REJECTED: "reject", None: "clear review of"}[state]
    annotations.decide({result.key: entry}, f"{what} AI result")


def sync_layer_meta(review: Mapping, results) -> None:
    """Write each result's review into its layers' meta, for exporters and the views: ``reviewed`` (bool),
    ``review_state`` ("not reviewed", "in review", "reviewed", "rejected"), ``reviewed_by`` / ``reviewed_at``
    (only once reviewed), ``decided_by`` / ``decided_at`` (the latest decision in any state) and, on a marker
    layer, ``detection_review`` (each detection's own state)."""
    for result in results:
        status = result_status(review, result)
        for layer in result.layers:
            layer.meta["reviewed"] = status.state == "reviewed"
            layer.meta["review_state"] = status.state
            if status.state == "reviewed":
                layer.meta["reviewed_by"], layer.meta["reviewed_at"] = status.user, status.time
            else:
                layer.meta.pop("reviewed_by", None)
                layer.meta.pop("reviewed_at", None)
            if status.state in ("reviewed", "rejected", "in review"):  # the latest decision, whatever it was
                layer.meta["decided_by"], layer.meta["decided_at"] = status.user, status.time
            else:
                layer.meta.pop("decided_by", None)
                layer.meta.pop("decided_at", None)
        if result.marker_layer is not None:
            result.marker_layer.meta["detection_review"] = tuple(finding_states(review, result))
