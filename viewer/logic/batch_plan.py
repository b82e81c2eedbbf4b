"""What a batch will do: the series found under the inputs, each one job, a ``failed`` row or a ``skipped`` row.

``plan_batch(inputs, selection)`` scans every input folder (headers only, ``viewer.io.dicom_index``) and sorts
each series into one of three piles:

* a :class:`BatchJob` — a volume that matches the :class:`Selection` (modality, description regex, minimum
  number of slices): the model will run on it;
* a ``failed`` row — a series the index refuses (its files become one row, with the index's reason);
* a ``skipped`` row — a series the selection leaves out, or that is no volume (a localizer, a secondary
  capture, 2D images), with the reason.

A job is small and picklable (paths, not pixels): the worker re-reads the headers of its series' files, so a
job travels cheaply to another process or another machine. ``fingerprint`` (SOP instance UIDs, sizes and
modification times, no pixel read) lets a rerun recognise unchanged input without hashing it in this process;
the content hash itself is computed by the job (:mod:`viewer.logic.batch_jobs`). Qt-free and torch-free.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

SKIPPED, FAILED, OK = "skipped", "failed", "ok"


class SelectionError(ValueError):
    """A ``--select`` term that cannot be used: the message is for the user."""


@dataclass(frozen=True)
class Selection:
    """Which series become jobs. ``modalities`` empty: any; ``description``: a regex searched, case-insensitive."""

    modalities: tuple[str, ...] = ()
    description: str = ""
    min_slices: int = 1

    KEYS = ("modality", "description", "min_slices")

    @classmethod
    def parse(cls, terms: Iterable[str], default_modality: str = "") -> "Selection":
        """``["modality=CT", "description=chest|thorax", "min_slices=100"]``; ``modality=any`` selects every one.

        Without a ``modality`` term the model's own modality (``default_modality``) is selected.
        """
        values: dict[str, str] = {}
        for term in terms:
            key, sep, value = str(term).partition("=")
            key = key.strip().lower().replace("-", "_")
            if not sep or key not in cls.KEYS:
                raise SelectionError(f"--select {term!r}: use KEY=VALUE with KEY one of {', '.join(cls.KEYS)}")
            values[key] = value.strip()
        modality = values.get("modality", default_modality)
        modalities = () if modality.lower() in ("", "any", "*") else \
            tuple(m.strip().upper() for m in modality.split(",") if m.strip())
        description = values.get("description", "")
        try:
            re.compile(description)
        except re.error as exc:
            raise SelectionError(f"--select description={description!r}: not a regular expression ({exc})") from None
        try:
            min_slices = int(values.get("min_slices", "1"))
        except ValueError:
            raise SelectionError(f"--select min_slices={values['min_slices']!r}: not a whole number") from None
        return cls(modalities, description, max(1, min_slices))

    def refusal(self, entry) -> str:
        """Why ``entry`` (a ``SeriesEntry``) is left out; "" when it is selected."""
        if self.modalities and entry.modality.upper() not in self.modalities:
            return f"modality {entry.modality or '(none)'} is not {'/'.join(self.modalities)}"
        if self.description and not re.search(self.description, entry.description or "", re.IGNORECASE):
            return f"description {entry.description!r} does not match {self.description!r}"
        if entry.n_images < self.min_slices:
            return f"{entry.n_images} image(s), fewer than min_slices={self.min_slices}"
        return ""

    def describe(self) -> str:
        parts = [f"modality {'/'.join(self.modalities) or 'any'}"]
        if self.description:
            parts.append(f"description ~ {self.description!r}")
        if self.min_slices > 1:
            parts.append(f"at least {self.min_slices} slices")
        return ", ".join(parts)


@dataclass(frozen=True)
class BatchJob:
    """One series to run the model on: where its files are, and how to recognise them again."""

    key: str  # the index's series key: the SeriesInstanceUID, or "<uid>#<n>" for a part of a split series
    series_uid: str
    study_uid: str
    input: str  # the folder holding the series' files
    files: tuple[str, ...]  # every file of the series UID (all parts of a split series: the worker re-splits)
    part_files: tuple[str, ...]  # the files of this job's part (what the content hash covers)
    fingerprint: str
    modality: str = ""
    description: str = ""
    n_images: int = 0
    known_hash: str = ""  # the content hash of an earlier finished run, when the fingerprint changed since
    attempt: int = 1


@dataclass
class BatchPlan:
    jobs: list[BatchJob] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)  # failed (refused by the index) and skipped series
    n_files: int = 0
    not_dicom: int = 0  # files under the inputs that hold no DICOM image (reports, licences, …)


def fingerprint(entry_files: Iterable[tuple[str, str]]) -> str:
    """A digest of ``(sop_instance_uid, path)`` pairs' UIDs, sizes and modification times (no pixel read)."""
    h = hashlib.sha256()
    for uid, path in sorted(entry_files):
        try:
            st = os.stat(path)
            h.update(f"{uid}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{uid}|missing\n".encode())
    return h.hexdigest()


def _input_of(paths: Iterable[str]) -> str:
    paths = list(paths)
    if not paths:
        return ""
    common = os.path.commonpath(paths)
    return common if os.path.isdir(common) else os.path.dirname(common)


def base_row(entry, status: str, error: str = "") -> dict:
    """The identifying columns of a row for ``entry``."""
    return {"series_key": entry.key, "study_uid": entry.study_uid, "series_uid": entry.series_uid,
            "input": _input_of(entry.files), "modality": entry.modality, "description": entry.description,
            "n_images": entry.n_images, "status": status, "error": error}


def pacs_record_path(folder: str) -> str:
    """Where the PACS input (:mod:`viewer.logic.batch_pacs`) records how a retrieved series' cache folder fared."""
    folder = os.path.abspath(folder).rstrip(os.sep)
    return folder + ".json"


def _pacs_row(folder: str) -> dict | None:
    """The row of a PACS series that failed to retrieve or that the selection left out; None for any other input."""
    import json

    path = pacs_record_path(folder)
    if not os.path.basename(os.path.dirname(path)) == ".input" or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("status") not in (FAILED, SKIPPED):
        return None
    uid = str(record.get("series_uid", ""))
    return {"series_key": uid, "study_uid": str(record.get("study_uid", "")), "series_uid": uid,
            "input": f"{record.get('node', 'PACS')}: {uid}", "modality": str(record.get("modality", "")),
            "description": str(record.get("description", "")), "n_images": record.get("n_images", 0),
            "status": record["status"], "error": str(record.get("error", ""))}


def plan_batch(inputs: Iterable[str], selection: Selection,
               progress: Callable[[int, int, str], None] | None = None) -> BatchPlan:
    """Scan ``inputs`` (folders or files) and sort their series into jobs and rows; see the module notes.

    A series found under two inputs (the same key) is planned once. A PACS cache folder whose record says the
    series failed to retrieve or was left out (:mod:`viewer.logic.batch_pacs`) becomes that series' row.
    """
    from viewer.io.dicom_index import scan

    plan = BatchPlan()
    seen: set[str] = set()
    for path in inputs:
        pacs_row = _pacs_row(path)  # a PACS series that did not retrieve, or that the selection left out
        if pacs_row is not None:
            if pacs_row["series_key"] not in seen:
                seen.add(pacs_row["series_key"])
                plan.rows.append(pacs_row)
            continue
        index = scan(path, progress=progress)
        plan.n_files += index.n_files
        in_series = {p for e in index.series for p in e.files}
        plan.not_dicom += len({s.path for s in index.skipped} - in_series)
        series_files: dict[str, list[str]] = {}
        for entry in index.series:
            series_files.setdefault(entry.series_uid, []).extend(entry.files)
        for entry in index.series:
            if entry.key in seen:
                continue
            seen.add(entry.key)
            if entry.refusal is not None:
                plan.rows.append(base_row(entry, FAILED, f"refused by the index: {entry.refusal}"))
                continue
            why = "" if entry.kind == "volume" and not entry.planar and entry.plan is not None else \
                f"not a volume ({entry.kind}): the model takes a 3D series"
            why = why or selection.refusal(entry)
            if why:
                plan.rows.append(base_row(entry, SKIPPED, why))
                continue
            pairs = {(fr.file.sop_instance_uid or fr.file.path, fr.file.path) for fr in entry.frames}
            plan.jobs.append(BatchJob(
                key=entry.key, series_uid=entry.series_uid, study_uid=entry.study_uid,
                input=_input_of(entry.files), files=tuple(sorted(set(series_files[entry.series_uid]))),
                part_files=tuple(entry.files), fingerprint=fingerprint(pairs), modality=entry.modality,
                description=entry.description, n_images=entry.n_images))
    return plan
