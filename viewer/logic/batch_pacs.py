"""PACS input of a batch: the series a query finds, each retrieved into a cache folder under the output folder.

:func:`fetch_series` runs in the planning step, before the model's jobs start: it queries the node at series
level (C-FIND or QIDO-RS, :func:`viewer.logic.pacs.query`), leaves out the series the batch's :class:`Selection`
refuses on what the query says (modality, description, number of instances), and retrieves each other one
(C-GET by default; C-MOVE or WADO-RS as asked, :func:`viewer.logic.pacs.retrieve`) into
``OUT/.input/<series_uid>/``. Beside each cache folder ``OUT/.input/<series_uid>.json`` records how the series
fared — ``complete``, ``failed`` (with the reason) or ``skipped`` (with the selection's reason) — and
:func:`viewer.logic.batch_plan.plan_batch` turns a ``failed`` or ``skipped`` record into that series' row and
scans a ``complete`` one like any folder. A rerun does not retrieve a series whose cache is complete again
(its unchanged files then let the manifest keep the finished job); a failed or interrupted retrieve is resumed,
fetching only what is missing. Qt-free and torch-free.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

from radview_base.atomic_file import atomic_write_bytes
from viewer.logic.batch_plan import FAILED, SKIPPED, Selection, pacs_record_path
from viewer.logic.pacs import QueryRequest, RetrieveRequest, query, retrieve
from viewer.net.errors import NetError, SettingsError
from viewer.net.instance_header import safe_name
from viewer.net.nodes import DEFAULT_CALLING_AET, LocalAE, Node
from viewer.net.records import QueryCriteria, SeriesRecord

CACHE = ".input"
COMPLETE = "complete"


@dataclass(frozen=True)
class PacsInput:
    """Where the series come from: a node, what to ask it (``criteria`` at series level) and how to retrieve."""

    node: Node
    criteria: QueryCriteria = QueryCriteria(level="series")
    method: str = ""  # "" (C-GET for a DIMSE node, WADO-RS for DICOMweb), "get", "move" or "wado"
    calling_aet: str = DEFAULT_CALLING_AET
    local: LocalAE = field(default_factory=LocalAE)


@dataclass
class PacsFetch:
    inputs: list[str] = field(default_factory=list)  # cache folders, one per series (whatever its record says)
    found: int = 0  # series the query returned
    retrieved: int = 0  # retrieved now
    reused: int = 0  # complete from an earlier run: not retrieved again
    failed: int = 0
    skipped: int = 0

    def text(self, node: str) -> str:
        return (f"{self.found} series on {node}: {self.retrieved} retrieved now, {self.reused} already here, "
                f"{self.failed} failed to retrieve, {self.skipped} left out by the selection")


def cache_folder(out: str, series_uid: str) -> str:
    return os.path.join(os.path.abspath(out), CACHE, safe_name(series_uid))


def read_record(folder: str) -> dict | None:
    try:
        with open(pacs_record_path(folder), encoding="utf-8") as fh:
            record = json.load(fh)
        return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None


def _write_record(folder: str, record: SeriesRecord, node: str, status: str, error: str = "") -> None:
    data = {"series_uid": record.series_uid, "study_uid": record.study_uid, "modality": record.modality,
            "description": record.description, "n_images": record.n_instances or 0, "node": node,
            "status": status, "error": error}
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    atomic_write_bytes(pacs_record_path(folder), json.dumps(data, indent=1))


def _refusal(selection: Selection, record: SeriesRecord) -> str:
    """The selection's reason to leave the series out, judged on the query's answer (unknown counts pass)."""
    n = record.n_instances if record.n_instances is not None else max(selection.min_slices, 1)
    return selection.refusal(SimpleNamespace(modality=record.modality, description=record.description, n_images=n))


def fetch_series(source: PacsInput, out: str, selection: Selection,
                 on_series: Callable[[int, int, str], None] | None = None,
                 cancel: threading.Event | None = None) -> PacsFetch:
    """Query ``source`` and bring each selected series into its cache folder under ``out``; see the module notes.

    Raises :class:`NetError` / :class:`SettingsError` when the query itself fails (nothing to plan); a series whose
    retrieve fails is recorded ``failed`` with the reason and the rest go on. ``on_series(done, total, text)``
    after each series.
    """
    criteria = source.criteria
    if criteria.level != "series":
        criteria = QueryCriteria(**{**criteria.__dict__, "level": "series"})
    records = query(QueryRequest(source.node, criteria, source.calling_aet), cancel)
    fetch = PacsFetch(found=len(records))
    seen: set[str] = set()
    for i, record in enumerate(records, 1):
        if not record.series_uid or record.series_uid in seen:
            continue
        seen.add(record.series_uid)
        folder = cache_folder(out, record.series_uid)
        fetch.inputs.append(folder)
        why = _refusal(selection, record)
        previous = read_record(folder)
        if why:
            _write_record(folder, record, source.node.label, SKIPPED, why)
            fetch.skipped += 1
            text = f"skipped {record.series_uid}: {why}"
        elif previous and previous.get("status") == COMPLETE and os.path.isdir(folder):
            fetch.reused += 1
            text = f"already here {record.series_uid}"
        else:
            error = ""
            try:
                result = retrieve(RetrieveRequest(source.node, record.study_uid, record.series_uid, source.method,
                                                  source.calling_aet, folder, source.local), cancel=cancel)
                if not result.complete:
                    first = f"; first: {result.failed[0][1]}" if result.failed else ""
                    error = f"retrieve incomplete: {result.summary()}{first}"
                elif not result.arrived and not result.already_present:
                    error = f"retrieve brought nothing: {result.summary()}"
            except (NetError, SettingsError) as exc:
                error = f"retrieve failed: {exc}"
            if error:
                _write_record(folder, record, source.node.label, FAILED, error)
                fetch.failed += 1
                text = f"failed {record.series_uid}: {error}"
            else:
                _write_record(folder, record, source.node.label, COMPLETE)
                fetch.retrieved += 1
                text = f"retrieved {record.series_uid}"
        if on_series is not None:
            on_series(i, len(records), text)
    return fetch
