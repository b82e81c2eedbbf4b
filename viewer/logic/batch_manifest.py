"""The memory of a batch output folder: ``manifest.jsonl`` (what each job did) and ``results.csv`` (one row per job).

``manifest.jsonl`` is append-only: one JSON object per line, each line written whole and fsynced before the next
job is reported, so a SIGKILL at any moment loses at most the jobs in flight (a torn last line is ignored when
read). A ``run`` record opens each run (model, version, when); a ``job`` record closes each job (its row, the
content hash and fingerprint of its input, the model and version). The latest ``job`` record of a key wins.

``results.csv`` is derived from the manifest: written whole (atomically) when a run starts and ends, and a row
appended as each job finishes, so that a reader sees progress; after a kill the next run writes it whole again,
each job exactly once.

A rerun skips a job whose latest record is ``ok`` for the same model and version and the same input (the same
fingerprint, or — checked by the job itself — the same content hash) while its output folder is complete; a
failed job is retried. One output folder holds one model's results (another model is refused), and one run at a
time (an advisory lock, released by the kernel when the process dies). Qt-free and torch-free.
"""
from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timezone
from typing import Iterable

from radview_base.atomic_file import atomic_write_bytes

MANIFEST = "manifest.jsonl"
RESULTS = "results.csv"
LOCK = ".batch.lock"
#: the files a finished job's folder must hold to count as complete (SEG, SR and thumbnail may be refused)
REQUIRED_OUTPUTS = ("findings.json",)
BASE_COLUMNS = ("study_uid", "series_uid", "series_key", "input", "modality", "description", "n_images", "model",
                "model_version", "status", "seconds", "model_seconds", "n_findings", "error", "notes")


class BatchFolderError(RuntimeError):
    """The output folder cannot take this batch (another model's results, another run going on)."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def volume_column(name: str) -> str:
    return f"volume_ml_{name}"


class Manifest:
    """The manifest of output folder ``out``: read at open, appended to as jobs finish."""

    def __init__(self, out: str, model_id: str, model_version: str, label_names: Iterable[str] = ()):
        self.out = os.path.abspath(out)
        self.model_id = model_id
        self.model_version = model_version
        self.columns = list(BASE_COLUMNS) + [volume_column(n) for n in label_names]
        self.latest: dict[str, dict] = {}  # key → its latest job record
        self.runs: list[dict] = []
        self.torn_lines = 0
        self._lock_fd: int | None = None
        self._csv = None
        os.makedirs(self.out, exist_ok=True)
        self._read()

    # --- reading ----------------------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        return os.path.join(self.out, MANIFEST)

    @property
    def results_path(self) -> str:
        return os.path.join(self.out, RESULTS)

    def _read(self) -> None:
        if not os.path.isfile(self.path):
            return
        with open(self.path, "rb") as fh:
            lines = fh.read().split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:  # a line torn by a kill mid-write: that job was in flight, it runs again
                self.torn_lines += 1
                continue
            if record.get("kind") == "run":
                self.runs.append(record)
            elif record.get("kind") == "job" and record.get("key"):
                self.latest[record["key"]] = record
        models = {r.get("model") for r in self.runs} - {None, self.model_id}
        if models:
            raise BatchFolderError(f"{self.out} holds the results of model {sorted(models)[0]!r}, not "
                                f"{self.model_id!r}: give another --out folder")

    def folder(self, key: str) -> str:
        from viewer.logic.exports import safe_name

        return os.path.join(self.out, safe_name(key))

    def finished(self, key: str, fingerprint: str) -> dict | None:
        """The ok record of ``key`` for this model, version and input fingerprint, with its outputs in place."""
        record = self.previous_ok(key)
        if record is None or record.get("fingerprint") != fingerprint:
            return None
        return record

    def previous_ok(self, key: str) -> dict | None:
        """The latest record of ``key`` when it is ok for this model and version and its outputs are complete."""
        record = self.latest.get(key)
        if record is None or record.get("status") != "ok":
            return None
        if record.get("model") != self.model_id or record.get("model_version") != self.model_version:
            return None
        folder = self.folder(key)
        if not all(os.path.isfile(os.path.join(folder, name)) for name in REQUIRED_OUTPUTS):
            return None
        return record

    # --- writing ----------------------------------------------------------------------------------------------
    def lock(self) -> None:
        """Hold the folder's run lock (released on close, or by the kernel when this process dies)."""
        import fcntl

        fd = os.open(os.path.join(self.out, LOCK), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise BatchFolderError(f"another batch is running into {self.out}") from None
        self._lock_fd = fd

    def _append(self, record: dict) -> None:
        data = (json.dumps(record, allow_nan=False, default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def start_run(self, info: dict) -> None:
        record = {"kind": "run", "model": self.model_id, "model_version": self.model_version,
                  "started_at": now_iso(), **info}
        self._append(record)
        self.runs.append(record)

    def record_job(self, record: dict) -> None:
        """Append a finished job's record (it must hold ``key`` and ``row``) and its results.csv row."""
        record = {"kind": "job", "model": self.model_id, "model_version": self.model_version,
                  "finished_at": now_iso(), **record}
        self._append(record)
        self.latest[record["key"]] = record
        if self._csv is not None:
            self._csv.write(self._csv_text([record["row"]], header=False))
            self._csv.flush()

    # --- results.csv ------------------------------------------------------------------------------------------
    def _csv_text(self, rows: Iterable[dict], header: bool = True) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        if header:
            writer.writeheader()
        for row in rows:
            writer.writerow({k: _cell(v) for k, v in row.items()})
        return buf.getvalue()

    def write_results(self, rows: Iterable[dict], keep_open: bool) -> None:
        """Write results.csv whole (atomically) with ``rows``; ``keep_open``: append job rows as they finish."""
        self.close_results()
        atomic_write_bytes(self.results_path, self._csv_text(rows))
        if keep_open:
            self._csv = open(self.results_path, "a", encoding="utf-8", newline="")

    def close_results(self) -> None:
        if self._csv is not None:
            self._csv.close()
            self._csv = None

    def close(self) -> None:
        self.close_results()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if value == value else ""
    return str(value).replace("\r", " ").replace("\n", " ")
