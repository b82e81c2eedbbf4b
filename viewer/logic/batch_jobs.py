"""The one job function of a batch: open one series, run the model on it, write its outputs — in any engine.

:class:`JobWorker` lives where the model runs (a local worker process, a Ray actor) and keeps one
``ai.engine.Engine``, so the model is loaded once per worker, not per series. :func:`run_job` never raises: a
failure of any step (the series is refused or does not load, the model fails, an output cannot be written)
becomes a ``failed`` outcome whose ``error`` says why. A GPU out of memory is the engine's to absorb (one window
at a time, then the CPU: ``ai.engine``), and its message lands in the row's notes.

Steps of one job, each timed (the outcome's ``timings``): ``index`` (the headers read again), ``load``,
``model`` (``model_run``: the engine's own run time), ``wait_prefetch``, ``count`` (the voxels of each label and of
each slice, :func:`label_census`) and ``write`` (:mod:`viewer.logic.batch_outputs`; each file as ``write_<name>``).
A thread beside them (``prefetch_thread``) hashes the series' files while the index and the load run and reads the
source headers the SEG and SR need while the model runs; when the job carries the hash of an earlier finished run
(its files were touched since), the hash comes first (``hash``), and an unchanged input stops the job there as
``unchanged``. The outcome also says the worker's peak memory so far (``peak_rss_mb``). torch is imported by the
engine, in the worker, never in the process that plans the batch. Qt-free.
"""
from __future__ import annotations

import hashlib
import os
import platform
import time
import traceback
from dataclasses import dataclass, field

from viewer.logic.batch_plan import FAILED, OK, BatchJob

UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ModelSpec:
    """Which model, on which device, with which consent; the same in every worker."""

    model_id: str = ""
    model_dir: str = ""  # a model folder (model.toml with weights, or an nnU-Net results folder)
    device: str = "auto"
    allow_torchscript: bool = False
    options: dict = field(default_factory=dict)


def content_hash(paths) -> str:
    """SHA-256 over the SHA-256 of each file, sorted: the same bytes give the same hash wherever they lie."""
    digests = []
    for path in paths:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        digests.append(h.digest())
    total = hashlib.sha256()
    for d in sorted(digests):
        total.update(d)
    return total.hexdigest()


class JobWorker:
    """One loaded model and the output folder; :meth:`run` runs one job (the engines call this)."""

    def __init__(self, spec: ModelSpec, out: str):
        self.spec = spec
        self.out = os.path.abspath(out)
        self._engine = None
        self._manifest = None

    def model(self):
        """(engine, manifest), made on first use in this process."""
        if self._engine is None:
            from ai.engine import Engine
            from ai.registry import Registry, default_registry

            if self.spec.model_dir:
                registry = Registry(extra_dirs=[], builtin=False)
                manifest = registry.add_model_folder(self.spec.model_dir)
            else:
                registry = default_registry()
                manifest = registry.get(self.spec.model_id)
            self._engine, self._manifest = Engine(registry), manifest
        return self._engine, self._manifest

    def warm_up(self) -> str:
        """Load what every job needs (torch, the registry, the readers and writers) before the first job, so that
        a job's timings are its own; return the process id and the device."""
        import importlib

        engine, _ = self.model()
        for module in ("viewer.io.series_loader", "viewer.export.seg", "viewer.export.sr", "highdicom",
                       "viewer.logic.batch_outputs", "viewer.core.review", "PIL.PngImagePlugin"):
            importlib.import_module(module)
        _warm_dicom_tables()
        return f"{os.getpid()}: {engine.warm_up()}"

    def run(self, job: BatchJob) -> dict:
        return run_job(job, self)


def _warm_dicom_tables() -> None:
    """Read the tables highdicom parses on its first SEG or SR (the standard's IODs, modules and attributes: half a
    second of JSON) and radview's segment codes, once per worker instead of in its first job."""
    from viewer.export.seg import segment_codes

    segment_codes("lung_left")
    try:
        from highdicom import _standard_utils as tables  # private, cached with lru_cache: may move in a release
    except ImportError:
        return
    for name in ("get_sop_class_iod_map", "get_iod_module_map", "get_module_attribute_map"):
        getter = getattr(tables, name, None)
        if callable(getter):
            getter()


def _reindex(job: BatchJob):
    """The job's series entry, from its files' headers read again (a split series is split the same way)."""
    from viewer.io.dicom_header import Skipped, read_header
    from viewer.io.dicom_index import build_index

    images, skipped = [], []
    for path in job.files:
        result = read_header(path)
        (skipped if isinstance(result, Skipped) else images).append(result)
    index = build_index(job.input, images, skipped, len(job.files))
    try:
        return index.find(job.key)
    except KeyError:
        why = f" ({skipped[0].path}: {skipped[0].reason})" if skipped else ""
        raise _JobFailed(f"the series' files changed since the batch was planned: {len(skipped)} of "
                         f"{len(job.files)} no longer read as DICOM images{why}") from None


def _infer(worker: JobWorker, volume):
    from ai.api import InferenceRequest

    engine, manifest = worker.model()
    allowed = frozenset({manifest.folder}) if worker.spec.allow_torchscript and manifest.folder else frozenset()
    options = dict(worker.spec.options)
    if worker.spec.model_dir:
        options.setdefault("model_folder", worker.spec.model_dir)

    def request(device: str):
        return InferenceRequest(array=volume.array, grid=volume.geometry, model_id=manifest.id, device=device,
                                options=options, modality=volume.modality,
                                series_uid=str(volume.meta.get("series_uid", "")),
                                series_description=str(volume.meta.get("description", "")), allow_code_in=allowed)

    # a GPU out of memory: the engine retries with one window at a time, then on the CPU, and says so in the
    # result's messages (the row's notes)
    return engine.run(request(worker.spec.device or "auto")), manifest


def label_counts(result, chunk: int = 1 << 22) -> dict[int, int]:
    """Voxels of each of the result's labels (see :func:`label_census`)."""
    return label_census(result, chunk)[0]


def label_census(result, chunk: int = 1 << 22):
    """(voxels of each of the result's labels, labelled voxels of each axial slice or None).

    The slices are counted first (``np.count_nonzero`` per slice: a hundredth of a second for 512 x 512 x 300);
    the labels are then counted only between the first and the last labelled slice — a model's labels often fill
    a fraction of the slices —, in chunks, background by difference. Per label a comparison for the usual few (four
    times faster than ``np.bincount``, which widens the map to int64 first; ``np.unique`` sorts it), else a
    bincount. The slice counts also choose the thumbnail's slice without another pass.
    """
    import numpy as np

    if result.labels is None:
        return {}, None
    labels = sorted(result.label_names)
    array = result.labels
    per_slice = None
    if array.ndim == 3 and array.shape[0] > 1:
        per_slice = np.fromiter((np.count_nonzero(plane) for plane in array), np.int64, array.shape[0])
        filled = np.flatnonzero(per_slice)
        array = array[filled[0]:filled[-1] + 1] if filled.size else array[:0]
    if len(labels) <= 32:
        flat, step = array.reshape(-1), max(1, chunk // 2)
        counts = dict.fromkeys(labels, 0)
        for start in range(0, flat.size, step):  # in slabs: the comparisons' masks stay small and are reused
            part = flat[start:start + step]
            for label in labels:
                counts[label] += int(np.count_nonzero(part == label))
    else:
        flat = array.reshape(-1)
        total = np.zeros(max(labels) + 1, np.int64)
        for start in range(0, flat.size, chunk):
            total += np.bincount(flat[start:start + chunk], minlength=total.size)[:total.size]
        counts = {label: int(total[label]) for label in labels}
    if per_slice is not None and 0 in counts:  # background outside the labelled slices too
        counts[0] = int(result.labels.size - per_slice.sum())
    return counts, per_slice


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (MB): what one worker needs."""
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024, 1)
    except (ImportError, OSError):
        return 0.0


class _Prefetch:
    """What the writing needs but the model does not, read in a thread: the content hash while the series is indexed
    and loads, then — once :meth:`give_entry` hands it the loaded series' entry — the source images' headers for the
    SEG and SR (``viewer.export.seg.SourceSeries``) while the model runs. pydicom parses in Python, holding the GIL:
    beside the load it slowed the load's reading threads (0.13 s, not 0.085 s, for 512 x 512 x 300 on 2 busy cores)."""

    def __init__(self, job: BatchJob, need_hash: bool):
        import threading

        self.job, self.need_hash = job, need_hash
        self.entry = None
        self.content_hash = ""
        self.source = None
        self.source_error = ""
        self.error: BaseException | None = None
        self.seconds = 0.0
        self._entry_ready = threading.Event()
        self._thread = threading.Thread(target=self._work, name="batch-prefetch", daemon=True)
        self._thread.start()

    def give_entry(self, entry) -> None:
        self.entry = entry
        self._entry_ready.set()

    def _work(self) -> None:
        t0 = time.perf_counter()
        try:
            if self.need_hash:
                self.content_hash = content_hash(self.job.part_files)
            if self._entry_ready.wait() and self.entry is not None:
                from viewer.export.seg import SegError, SourceSeries

                try:
                    self.source = SourceSeries.from_entry(self.entry)
                except SegError as exc:
                    self.source_error = str(exc)
        except BaseException as exc:  # noqa: BLE001 - handed to the job, which reports it
            self.error = exc
        finally:
            self.seconds = time.perf_counter() - t0

    def result(self):
        self._entry_ready.set()
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self


def run_job(job: BatchJob, worker: JobWorker) -> dict:
    """Run one job; never raises. The outcome: ``key``, ``status`` (ok, failed, unchanged), ``error``, ``notes``,
    ``content_hash``, ``timings``, and for ok jobs ``model_version``, ``volumes_ml``, ``n_findings``."""
    t0 = time.perf_counter()
    outcome: dict = {"key": job.key, "status": FAILED, "error": "", "notes": [], "content_hash": "",
                     "timings": {}, "worker": f"{platform.node()}:{os.getpid()}"}
    step = "hash"
    stamp = t0
    staged = None
    prefetch = None

    def lap(name: str) -> None:
        nonlocal stamp
        now = time.perf_counter()
        outcome["timings"][name] = round(now - stamp, 4)
        stamp = now

    try:
        final = os.path.join(worker.out, _safe(job.key))
        if job.known_hash:  # an earlier run finished this series, and its files were touched since: same bytes?
            outcome["content_hash"] = content_hash(job.part_files)
            lap("hash")
            if job.known_hash == outcome["content_hash"] and os.path.isfile(os.path.join(final, "findings.json")):
                outcome["status"] = UNCHANGED
                return outcome
        prefetch = _Prefetch(job, need_hash=not job.known_hash)  # the hash and the headers, beside the model
        step = "index"
        entry = _reindex(job)
        if not entry.loadable:
            raise _JobFailed(f"refused by the index: {entry.refusal}")
        lap("index")
        step = "load"
        from viewer.io.series_loader import load_series

        volume = load_series(entry)
        if volume.is_color:
            raise _JobFailed("colour images cannot be analysed")
        prefetch.give_entry(entry)  # the SEG/SR headers are parsed beside the model, not beside the load
        outcome["notes"] += [f"loading: {w}" for w in volume.warnings]
        lap("load")
        step = "model"
        result, manifest = _infer(worker, volume)
        outcome["timings"]["model_run"] = round(result.provenance.run_time_s, 4)
        lap("model")
        step = "write"
        from ai.api import NOT_A_DIAGNOSIS
        from viewer.logic.batch_outputs import findings_document, put_in_place, staging_folder, write_job_outputs

        ready = prefetch.result()
        outcome["content_hash"] = outcome["content_hash"] or ready.content_hash
        outcome["timings"]["prefetch_thread"] = round(ready.seconds, 4)
        lap("wait_prefetch")
        counts, per_slice = label_census(result)
        lap("count")
        findings = findings_document(volume, result, job.input, NOT_A_DIAGNOSIS)
        staged = staging_folder(worker.out, job.key)
        title = f"{manifest.name} {manifest.version} · {job.description or job.series_uid}"[:80]
        present = tuple(label for label, n in counts.items() if n)
        outcome["notes"] += write_job_outputs(staged, entry, volume, result, findings, title, ready.source,
                                              ready.source_error, present, timings=outcome["timings"],
                                              slice_counts=per_slice)
        put_in_place(staged, final)
        staged = None
        lap("write")
        ml = volume.geometry.voxel_volume_ml
        outcome.update(status=OK, model_version=manifest.version, n_findings=len(result.detections),
                       volumes_ml={result.label_names[k]: n * ml for k, n in counts.items()},
                       model_seconds=round(result.provenance.run_time_s, 3), device=result.provenance.device)
        outcome["notes"] += list(result.messages)
    except _JobFailed as exc:
        outcome["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001 - a failed case never stops the batch: its row says why
        outcome["error"] = f"{step}: {_words(exc)}"
        outcome["traceback"] = traceback.format_exc(limit=8)
    finally:
        if prefetch is not None:
            try:
                prefetch.result()  # never leave the thread reading behind a failed job
            except BaseException:  # noqa: BLE001 - the job's own error is the one reported
                pass
        if staged is not None:
            import shutil

            shutil.rmtree(staged, ignore_errors=True)
        outcome["seconds"] = round(time.perf_counter() - t0, 3)
        outcome["peak_rss_mb"] = _peak_rss_mb()
    return outcome


class _JobFailed(Exception):
    """A job that cannot go on: the message is the row's error."""


def _words(exc: BaseException) -> str:
    text = str(exc.args[0]) if len(exc.args) == 1 and isinstance(exc.args[0], str) else str(exc)
    from ai.api import ModelError

    if isinstance(exc, ModelError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _safe(key: str) -> str:
    from viewer.logic.exports import safe_name

    return safe_name(key)
