"""Run a model over every selected series of an archive: plan, skip what is done, run the rest, keep the record.

:func:`run_batch` is the use case behind ``radview-cli batch run``: it reads the model's manifest in this process
(no torch here), plans the batch (:mod:`viewer.logic.batch_plan`), opens the output folder's manifest
(:mod:`viewer.logic.batch_manifest`: a rerun keeps finished jobs as ``ok`` without redoing them and retries
failed ones), hands the remaining jobs to an engine (:mod:`viewer.logic.batch_engines`) and records each outcome
as it arrives. ``results.csv`` ends with one row per series found: ``ok``, ``failed`` (with the reason) or
``skipped`` (not selected, not a volume). Qt-free and torch-free.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from typing import Callable

from viewer.logic.batch_engines import LocalEngine, RayEngine
from viewer.logic.batch_jobs import UNCHANGED, ModelSpec
from viewer.logic.batch_manifest import BatchFolderError, Manifest, volume_column
from viewer.logic.batch_outputs import PARTIAL
from viewer.logic.batch_plan import FAILED, OK, SKIPPED, BatchJob, Selection, plan_batch


class BatchError(RuntimeError):
    """The batch cannot start (unknown model, bad selection, output folder taken): the message is for the user."""


@dataclass(frozen=True)
class BatchRequest:
    inputs: tuple[str, ...]
    out: str
    spec: ModelSpec
    select: tuple[str, ...] = ()
    engine: str = "local"  # "local" | "ray"
    workers: int | None = None
    threads: int | None = None
    address: str | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None


@dataclass
class BatchSummary:
    out: str
    results: str
    engine: str = ""
    counts: dict = field(default_factory=dict)  # status → rows
    carried: int = 0  # jobs finished by an earlier run and kept
    ran: int = 0  # jobs run now
    wall_s: float = 0.0
    failures: list = field(default_factory=list)  # (series key, error)

    @property
    def series_per_minute(self) -> float:
        return 60.0 * self.ran / self.wall_s if self.wall_s > 0 else 0.0


def model_manifest(spec: ModelSpec):
    """The model's manifest, read here without torch; BatchError when it is unknown or not allowed to run."""
    from ai import code_consent
    from ai.api import ModelError
    from ai.registry import ManifestError, Registry, default_registry

    try:
        if spec.model_dir:
            manifest = Registry(extra_dirs=[], builtin=False).add_model_folder(spec.model_dir)
        else:
            manifest = default_registry().get(spec.model_id)
    except (ManifestError, ModelError) as exc:
        raise BatchError(str(exc)) from exc
    allowed = {manifest.folder} if spec.allow_torchscript and manifest.folder else set()
    if not code_consent.allowed(manifest, allowed):
        raise BatchError(code_consent.refusal(manifest))
    return manifest


def make_engine(request: BatchRequest):
    if request.engine == "ray":
        return RayEngine(request.spec, request.out, request.workers, request.address, request.cpus_per_worker,
                         request.gpus_per_worker)
    if request.engine != "local":
        raise BatchError(f"unknown engine {request.engine!r}: use local or ray")
    return LocalEngine(request.spec, request.out, request.workers or 1, request.threads)


def _job_row(job: BatchJob, manifest, status: str) -> dict:
    return {"series_key": job.key, "study_uid": job.study_uid, "series_uid": job.series_uid, "input": job.input,
            "modality": job.modality, "description": job.description, "n_images": job.n_images,
            "model": manifest.id, "status": status}


def outcome_row(job: BatchJob, manifest, outcome: dict) -> dict:
    row = _job_row(job, manifest, outcome["status"])
    row.update(model_version=outcome.get("model_version", manifest.version), seconds=outcome.get("seconds"),
               model_seconds=outcome.get("model_seconds"), error=outcome.get("error", ""),
               notes="; ".join(outcome.get("notes") or []))
    if outcome["status"] == OK:
        row["n_findings"] = outcome.get("n_findings", 0)
        for name, ml in (outcome.get("volumes_ml") or {}).items():
            row[volume_column(name)] = round(float(ml), 3)
    return row


def _clean_partial(out: str) -> None:
    """Staging folders of jobs that were in flight when an earlier run died (this run holds the folder's lock)."""
    shutil.rmtree(os.path.join(out, PARTIAL), ignore_errors=True)


def run_batch(request: BatchRequest, on_row: Callable[[int, int, dict], None] | None = None,
              on_plan: Callable[[str], None] | None = None, engine=None) -> BatchSummary:
    """Run the batch; ``on_row(done, total, row)`` after each job run now, ``on_plan(text)`` once planned.

    ``engine``: an engine already made (and opened) by the caller; by default one from the request.
    """
    manifest_of_model = model_manifest(request.spec)
    names = [manifest_of_model.labels[k] for k in sorted(manifest_of_model.labels)]
    try:
        selection = Selection.parse(request.select, default_modality=manifest_of_model.modality)
    except ValueError as exc:
        raise BatchError(str(exc)) from exc
    try:
        book = Manifest(request.out, manifest_of_model.id, manifest_of_model.version, names)
        book.lock()
    except BatchFolderError as exc:
        raise BatchError(str(exc)) from exc
    t0 = time.perf_counter()
    own_engine = engine is None
    try:
        plan = plan_batch(request.inputs, selection)
        to_run: list[BatchJob] = []
        rows: dict[str, dict] = {}  # series key → its row, in plan order
        carried = 0
        for row in plan.rows:
            kept = book.previous_ok(row["series_key"]) if row["status"] == SKIPPED else None
            if kept is not None:  # finished by an earlier run, left out by this run's selection: still there
                rows[row["series_key"]] = kept["row"]
                continue
            rows[row["series_key"]] = {**row, "model": manifest_of_model.id, "model_version": manifest_of_model.version}
        for job in plan.jobs:
            done = book.finished(job.key, job.fingerprint)
            if done is not None:
                rows[job.key] = done["row"]
                carried += 1
                continue
            previous = book.previous_ok(job.key)
            to_run.append(replace(job, known_hash=previous.get("content_hash", "")) if previous else job)
            rows[job.key] = None  # to come
        for key, record in book.latest.items():  # earlier results of series not found this time stay listed
            if key not in rows and record.get("row"):
                rows[key] = record["row"]
        _clean_partial(book.out)
        if engine is None:
            engine = make_engine(request)
            engine.open()
        book.start_run({"inputs": [os.path.abspath(p) for p in request.inputs], "engine": engine.describe(),
                        "selection": selection.describe(), "jobs": len(to_run), "carried": carried})
        for row in plan.rows:  # what the index refused, in the log of this run
            if row["status"] == FAILED:
                book.record_job({"key": row["series_key"], "status": FAILED, "row": rows[row["series_key"]]})
        book.write_results([r for r in rows.values() if r is not None], keep_open=True)
        if on_plan is not None:
            on_plan(f"{len(plan.jobs) + len(plan.rows)} series found in {plan.n_files} file(s): {len(to_run)} to run, "
                    f"{carried} finished earlier, {sum(r['status'] == SKIPPED for r in plan.rows)} skipped, "
                    f"{sum(r['status'] == FAILED for r in plan.rows)} refused by the index; {engine.describe()}")
        summary = BatchSummary(book.out, book.results_path, engine.describe(), carried=carried)
        by_key = {job.key: job for job in plan.jobs}

        def on_outcome(job: BatchJob, outcome: dict) -> None:
            if outcome["status"] == UNCHANGED:  # same content as the finished run: kept, not redone
                previous = book.previous_ok(job.key)
                row = previous["row"] if previous else outcome_row(job, manifest_of_model, outcome)
                summary.carried += 1
            else:
                row = outcome_row(by_key.get(job.key, job), manifest_of_model, outcome)
                summary.ran += 1
            status = OK if outcome["status"] == UNCHANGED else outcome["status"]
            book.record_job({"key": job.key, "status": status, "row": row, "fingerprint": job.fingerprint,
                             "content_hash": outcome.get("content_hash", ""), "timings": outcome.get("timings", {}),
                             "worker": outcome.get("worker", ""), "attempt": job.attempt,
                             "peak_rss_mb": outcome.get("peak_rss_mb"),
                             **({"traceback": outcome["traceback"]} if outcome.get("traceback") else {})})
            rows[job.key] = row
            if on_row is not None:
                on_row(summary.ran + summary.carried - carried, len(to_run), row)

        engine.run(to_run, on_outcome)
        summary.engine = engine.describe()  # as it ran (a Ray cluster may have hosted fewer actors)
        final = [r for r in rows.values() if r is not None]
        book.write_results(final, keep_open=False)
        summary.wall_s = time.perf_counter() - t0
        for r in final:
            summary.counts[r["status"]] = summary.counts.get(r["status"], 0) + 1
        summary.failures = [(r["series_key"], r.get("error", "")) for r in final if r["status"] == FAILED]
        return summary
    finally:
        book.close()
        if own_engine and engine is not None:
            engine.close()
