"""Where a batch's jobs run: local worker processes, or Ray actors — each worker keeps one loaded model.

Both engines call the same job function (:meth:`viewer.logic.batch_jobs.JobWorker.run`) and report each outcome
through ``on_outcome(job, outcome)`` as it arrives (in the calling thread). Both apply back-pressure: at most
``DEPTH`` jobs are handed to each worker ahead of time, so however long the job list, a worker never holds more
than the one volume it is working on (a job is a few paths; the worker reads the pixels itself).

* :class:`LocalEngine` — ``workers`` processes (``spawn``), each with ``threads`` torch threads (default: the
  CPUs shared out); a device list (``cuda:0,cuda:1``) gives the workers one device each, in turn. On Linux a
  worker dies with the process that started it, so a killed batch leaves no orphan.
* :class:`RayEngine` — ``workers`` Ray actors on the cluster at ``address`` (none: a local Ray instance on the
  loopback interface only); ``num_gpus`` per actor where the cluster has GPUs and the device is not the CPU,
  ``cpus_per_worker`` CPUs each. Ray is an optional extra (``radview[batch]``), imported only here, inside the
  functions. Every node needs radview installed and the same paths to the input and output folders.

A worker that dies (killed, out of memory) takes its in-flight jobs with it: each is handed out once more, then
reported ``failed`` with the reason; the worker is replaced and the batch goes on. Qt-free and torch-free.
"""
from __future__ import annotations

import os
from collections import deque
from dataclasses import replace
from typing import Callable, Iterable

from viewer.logic.batch_jobs import JobWorker, ModelSpec
from viewer.logic.batch_plan import FAILED, BatchJob

DEPTH = 2  # jobs handed to a worker ahead of time (the one it runs and the next)
MAX_ATTEMPTS = 2
WORKER_DIED = "the worker process died while running this series (killed, or out of memory?)"

OnOutcome = Callable[[BatchJob, dict], None]


class EngineError(RuntimeError):
    """The engine cannot start (Ray missing, no cluster at the address): the message is for the user."""


def _died(job: BatchJob, why: str) -> dict:
    return {"key": job.key, "status": FAILED, "error": why, "notes": [], "content_hash": "", "timings": {},
            "seconds": 0.0}


def _retry_or_fail(job: BatchJob, queue: deque, on_outcome: OnOutcome) -> None:
    """A job lost with its worker: back to the front of the queue once, then ``failed``."""
    if job.attempt < MAX_ATTEMPTS:
        queue.appendleft(replace(job, attempt=job.attempt + 1))
    else:
        on_outcome(job, _died(job, WORKER_DIED))


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# --- local processes ---------------------------------------------------------------------------------------------
_WORKER: JobWorker | None = None


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _init_local(spec: ModelSpec, out: str, threads: int, counter=None) -> None:
    global _WORKER
    _die_with_parent()
    devices = [d.strip() for d in (spec.device or "auto").split(",") if d.strip()]
    if len(devices) > 1 and counter is not None:  # "cuda:0,cuda:1": the workers take the devices in turn
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        spec = replace(spec, device=devices[index % len(devices)])
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    _WORKER = JobWorker(spec, out)
    try:
        _WORKER.warm_up()
    except Exception:  # noqa: BLE001 - the first job reports what is wrong with the model
        pass


def _run_local(job: BatchJob) -> dict:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(job)


class LocalEngine:
    name = "local"

    def __init__(self, spec: ModelSpec, out: str, workers: int = 1, threads: int | None = None):
        self.spec, self.out = spec, os.path.abspath(out)
        self.workers = max(1, int(workers))
        self.threads = threads or max(1, usable_cpus() // self.workers)
        self._counter = None

    def describe(self) -> str:
        devices = (self.spec.device or "auto").split(",")
        where = f", devices {', '.join(devices)} in turn" if len(devices) > 1 else ""
        return f"local: {self.workers} worker process(es), {self.threads} thread(s) each{where}"

    def open(self) -> None:
        """Nothing to start ahead: the processes start with :meth:`run`."""

    def close(self) -> None:
        """Nothing left running after :meth:`run`."""

    def _pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        if self._counter is None:
            self._counter = context.Value("i", 0)
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=context, initializer=_init_local,
                                   initargs=(self.spec, self.out, self.threads, self._counter))

    def run(self, jobs: Iterable[BatchJob], on_outcome: OnOutcome) -> None:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        queue = deque(jobs)
        pool = self._pool()
        pending: dict = {}
        try:
            while queue or pending:
                while queue and len(pending) < DEPTH * self.workers:
                    job = queue.popleft()
                    pending[pool.submit(_run_local, job)] = job
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    job = pending.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        broken = True
                        _retry_or_fail(job, queue, on_outcome)
                        continue
                    except Exception as exc:  # noqa: BLE001 - e.g. a result that could not be sent back
                        outcome = _died(job, f"the worker could not return this job's result: {exc}")
                    on_outcome(job, outcome)
                if broken:  # every job still pending went down with the pool
                    for job in pending.values():
                        _retry_or_fail(job, queue, on_outcome)
                    pending.clear()
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = self._pool()
        finally:
            pool.shutdown(wait=not pending, cancel_futures=True)


# --- Ray ----------------------------------------------------------------------------------------------------------
class _RayWorker:
    """The body of a Ray actor: one JobWorker, so one loaded model per actor."""

    def __init__(self, spec: ModelSpec, out: str):
        self.worker = JobWorker(spec, out)
        try:
            self.worker.warm_up()
        except Exception:  # noqa: BLE001 - the first job reports what is wrong with the model
            pass

    def ready(self) -> bool:
        return True

    def run(self, job: BatchJob) -> dict:
        import ray

        outcome = self.worker.run(job)
        outcome["worker"] = f"{ray.util.get_node_ip_address()}:{os.getpid()}"  # which node, which actor
        return outcome


def _import_ray():
    try:
        import ray
    except ImportError:
        raise EngineError("--engine ray needs Ray: pip install 'radview[batch]' (or 'ray>=2.9')") from None
    return ray


class RayEngine:
    name = "ray"

    def __init__(self, spec: ModelSpec, out: str, workers: int | None = None, address: str | None = None,
                 cpus_per_worker: float = 1.0, gpus_per_worker: float | None = None):
        self.spec, self.out = spec, os.path.abspath(out)
        self.address = address or None
        self.workers = workers
        self.cpus_per_worker = float(cpus_per_worker)
        self.gpus_per_worker = gpus_per_worker
        self.num_gpus = 0.0
        self.start_timeout_s = 600.0
        self.notes: list[str] = []
        self._started_here = False

    def describe(self) -> str:
        where = self.address or "a local Ray instance (loopback only)"
        gpus = f", {self.num_gpus:g} GPU(s)" if self.num_gpus else ""
        notes = f" ({'; '.join(self.notes)})" if self.notes else ""
        return f"ray: {self.workers} actor(s) on {where}, {self.cpus_per_worker:g} CPU(s){gpus} each{notes}"

    def open(self) -> None:
        """Connect to the cluster (or start a local instance) and size the actor pool from its resources."""
        import logging

        ray = _import_ray()

        if self.address is None:
            # a local instance: listen on loopback only, send no usage statistics
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            n = self.workers or max(1, int(usable_cpus() // self.cpus_per_worker))
            ray.init(num_cpus=max(n * self.cpus_per_worker, 1), include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        else:
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise EngineError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None
        self._started_here = True
        resources = ray.cluster_resources()
        gpus = float(resources.get("GPU", 0))
        if gpus > 0 and (self.spec.device or "auto") != "cpu":
            self.num_gpus = float(self.gpus_per_worker or 1.0)
        fits = int(float(resources.get("CPU", 1)) // self.cpus_per_worker) if self.cpus_per_worker else 1 << 30
        if self.num_gpus:
            fits = min(fits, int(gpus // self.num_gpus))
        if fits < 1:
            raise EngineError(f"the Ray cluster at {self.address or 'this machine'} cannot host one worker with "
                              f"{self.cpus_per_worker:g} CPU(s) and {self.num_gpus:g} GPU(s) (it has "
                              f"{float(resources.get('CPU', 0)):g} CPU(s), {gpus:g} GPU(s))")
        if self.workers and self.workers > fits:
            self.notes.append(f"{self.workers} actors asked, {fits} fit the cluster's resources")
        self.workers = max(1, min(int(self.workers or fits), fits))

    def _start_actors(self, ray) -> list:
        """The actors, each with its model's libraries loaded; those that cannot be placed in time are dropped."""
        actors = [self._actor(ray) for _ in range(self.workers)]
        refs = {actor.ready.remote(): actor for actor in actors}
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=self.start_timeout_s)
        for ref in late:
            ray.kill(refs[ref])
        if not ready:
            raise EngineError(f"no Ray actor started within {self.start_timeout_s:g} s: the cluster may lack the "
                              f"resources asked ({self.cpus_per_worker:g} CPU(s), {self.num_gpus:g} GPU(s) each), or "
                              "radview is not installed on its nodes")
        if late:
            self.notes.append(f"{len(late)} of {len(actors)} actors did not start within {self.start_timeout_s:g} s")
            self.workers = len(ready)
        return [refs[ref] for ref in ready]

    def _actor(self, ray):
        cls = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.num_gpus)(_RayWorker)
        return cls.remote(self.spec, self.out)

    def run(self, jobs: Iterable[BatchJob], on_outcome: OnOutcome) -> None:
        if not self._started_here:
            self.open()
        ray = _import_ray()
        from ray.exceptions import RayActorError

        queue = deque(jobs)
        if not queue:
            return
        actors = self._start_actors(ray)
        load = {i: 0 for i in range(len(actors))}
        pending: dict = {}  # object ref → (actor index, job)
        try:
            while queue or pending:
                while queue and min(load.values()) < DEPTH:  # the least loaded actor first: spread, then queue
                    i = min(load, key=load.get)
                    job = queue.popleft()
                    pending[actors[i].run.remote(job)] = (i, job)
                    load[i] += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i, job = pending.pop(ref)
                    load[i] -= 1
                    try:
                        outcome = ray.get(ref)
                    except RayActorError:
                        self._replace(ray, actors, i, pending, load, queue, on_outcome, job)
                        continue
                    except Exception as exc:  # noqa: BLE001 - a failed case never stops the batch
                        outcome = _died(job, f"Ray could not run this job: {type(exc).__name__}: {exc}")
                    on_outcome(job, outcome)
        finally:
            for actor in actors:
                try:
                    ray.kill(actor)
                except Exception:  # noqa: BLE001 - already gone
                    pass

    def _replace(self, ray, actors, i, pending, load, queue, on_outcome, job) -> None:
        """Actor ``i`` died: its jobs go back to the queue (once) and a fresh actor takes its place."""
        lost = [job] + [j for ref, (k, j) in list(pending.items()) if k == i]
        for ref in [ref for ref, (k, _) in pending.items() if k == i]:
            del pending[ref]
        load[i] = 0
        for lost_job in reversed(lost):
            _retry_or_fail(lost_job, queue, on_outcome)
        try:
            ray.kill(actors[i])
        except Exception:  # noqa: BLE001 - already gone
            pass
        actors[i] = self._actor(ray)

    def close(self) -> None:
        if self._started_here:
            ray = _import_ray()
            ray.shutdown()
            self._started_here = False
