"""Run the AI engine in a child process, so the GUI process never imports torch and survives an engine crash.

The pixels go to the child, and the labels come back, as ``.npy`` files in a private temporary
folder (``/dev/shm`` when it has room), opened with mmap; small frozen records go through the pipe.
Messages are tuples ``(kind, job id, *payload)``. Use :class:`EngineClient` from one worker thread;
:meth:`EngineClient.cancel` and :meth:`EngineClient.close` may be called from any thread.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import types
from dataclasses import replace
from multiprocessing.connection import wait
from typing import Any, Optional

import numpy as np

from ai.api import Cancelled, InferenceRequest, InferenceResult, ModelError, ProgressFn

START_TIMEOUT_S = 120.0  # importing numpy on a cold disk can be slow; torch is imported on the first job
POLL_S = 0.05
SHM = "/dev/shm"
_PREFIX = "radview-ai-"


class EngineCrashed(ModelError):
    """The engine process died during a job (crash, out-of-memory kill); the next run starts a new one."""


class _ChildGone(Exception):
    pass


# --- the parent ----------------------------------------------------------------------------------------------
_SPAWN_LOCK = threading.Lock()


@contextlib.contextmanager
def _plain_main():
    """Hide ``__main__`` while spawning: otherwise the child re-imports the GUI's entry module (and Qt)."""
    with _SPAWN_LOCK:
        main = sys.modules.get("__main__")
        sys.modules["__main__"] = types.ModuleType("__main__")  # no __file__, no __spec__: nothing to re-import
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


def _temp_bases() -> list[Optional[str]]:
    return ([SHM] if os.path.isdir(SHM) and os.access(SHM, os.W_OK) else []) + [None]


def _job_dir(nbytes: int) -> str:
    """A private (0700) folder for one job's arrays: in shared memory when it has room, else the temp folder."""
    base = None
    if _temp_bases()[0] == SHM:
        try:
            if shutil.disk_usage(SHM).free > 2 * nbytes + (64 << 20):
                base = SHM
        except OSError:
            pass
    return tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-", dir=base)


def _sweep_stale_job_dirs() -> None:
    """Remove job folders left behind by radview processes that no longer exist (killed GUI)."""
    if os.name != "posix":  # os.kill(pid, 0) is a liveness probe on POSIX only
        return
    for base in _temp_bases():
        root = base or tempfile.gettempdir()
        try:
            names = [n for n in os.listdir(root) if n.startswith(_PREFIX)]
        except OSError:
            continue
        for name in names:
            try:
                pid = int(name[len(_PREFIX):].split("-", 1)[0])
                os.kill(pid, 0)
            except ValueError:
                continue
            except ProcessLookupError:
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            except OSError:
                continue


def _request_fields(request: InferenceRequest) -> dict[str, Any]:
    return {"grid": request.grid, "model_id": request.model_id, "device": request.device,
            "options": dict(request.options), "modality": request.modality, "series_uid": request.series_uid,
            "series_description": request.series_description, "allow_code_in": request.allow_code_in}


def _no_progress(fraction: float, message: str) -> None:
    pass


class EngineClient:
    """A handle on the engine process; it starts on first use and restarts after a crash or a forced cancel."""

    #: tests may replace the child's entry point (a module-level function, as a staticmethod); None: ``_serve``
    child_main = None

    def __init__(self, cancel_grace_s: float = 0.8, start_timeout_s: float = START_TIMEOUT_S):
        self.cancel_grace_s = cancel_grace_s
        self.start_timeout_s = start_timeout_s
        self._mp = mp.get_context("spawn")
        self._cancel_event = self._mp.Event()
        self._proc = None
        self._conn = None
        self._pid: Optional[int] = None
        self._job_id = 0
        self._busy = False
        self._closing = False
        self._cancel_at: Optional[float] = None
        self._job_lock = threading.Lock()  # one job or warm-up at a time
        self._state_lock = threading.RLock()  # start / kill / close

    # --- state ----------------------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        proc = self._proc
        return proc is not None and proc.is_alive()

    @property
    def pid(self) -> Optional[int]:
        """The engine process' id while it runs."""
        return self._pid if self.alive else None

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start the engine process (no-op while it runs); ModelError when it cannot start."""
        with self._state_lock:
            if self.alive:
                return
            self._discard()
            self._closing = False
            _sweep_stale_job_dirs()
            parent_conn, child_conn = self._mp.Pipe(duplex=True)
            env = {k: v for k, v in os.environ.items() if k.startswith("RADVIEW_")}
            proc = self._mp.Process(target=self.child_main or _serve, args=(child_conn, self._cancel_event, env),
                                    name="radview-ai-engine", daemon=True)
            try:
                with _plain_main():
                    proc.start()
            except Exception as exc:
                parent_conn.close()
                raise ModelError(f"the AI engine could not start: {type(exc).__name__}: {exc}") from exc
            finally:
                child_conn.close()
            self._proc, self._conn = proc, parent_conn
            deadline = time.monotonic() + self.start_timeout_s
            while True:
                try:
                    msg = self._recv(proc, parent_conn, POLL_S)
                except _ChildGone:
                    code = self._reap()
                    raise ModelError(f"the AI engine could not start (exit code {code})") from None
                if msg is not None and msg[0] == "hello":
                    self._pid = int(msg[2])
                    return
                if msg is not None and msg[0] == "fatal":
                    self._kill()
                    raise ModelError(f"the AI engine could not start: {msg[2]}")
                if time.monotonic() > deadline:
                    self._kill()
                    raise ModelError(f"the AI engine did not start within {self.start_timeout_s:.0f} s")

    def warm_up(self, wait_s: Optional[float] = None) -> Optional[str]:
        """Start the engine and have it import torch and the models now; return its default device.

        ``wait_s=0`` only asks (returns None at once); otherwise wait up to ``wait_s`` (None: until ready).
        """
        with self._job_lock:
            self.start()
            job = self._next_job()
            self._send(("warmup", job))
            if wait_s == 0:
                return None
            proc, conn = self._proc, self._conn
            deadline = None if wait_s is None else time.monotonic() + wait_s
            while deadline is None or time.monotonic() < deadline:
                try:
                    msg = self._recv(proc, conn, POLL_S)
                except _ChildGone:
                    code = self._reap()
                    raise EngineCrashed(self._crash_text(code)) from None
                if msg is not None and msg[1] == job:
                    if msg[0] == "error":
                        raise ModelError(msg[2])
                    return msg[2]
            return None

    def run(self, request: InferenceRequest, progress: Optional[ProgressFn] = None) -> InferenceResult:
        """Run ``request`` in the engine process (blocking); raise Cancelled, ModelError or EngineCrashed."""
        progress = progress or _no_progress
        with self._job_lock:
            self._busy = True
            self._cancel_event.clear()
            self._cancel_at = None
            job_dir = None
            try:
                self.start()
                try:
                    job_dir = _job_dir(request.array.nbytes)
                    in_path, out_path = os.path.join(job_dir, "image.npy"), os.path.join(job_dir, "labels.npy")
                    np.save(in_path, request.array, allow_pickle=False)
                except OSError as exc:
                    raise ModelError(f"cannot hand the image to the AI engine: {exc.strerror or exc}") from exc
                if self._cancel_at is not None:
                    raise Cancelled("cancelled by the user")
                job = self._next_job()
                self._send(("run", job, _request_fields(request), in_path, out_path))
                return self._wait_for_result(job, out_path, progress)
            finally:
                self._busy = False
                self._cancel_at = None
                if job_dir is not None:
                    shutil.rmtree(job_dir, ignore_errors=True)

    def cancel(self) -> None:
        """Ask the running job to stop; a job that does not stop within ``cancel_grace_s`` is killed."""
        self._cancel_event.set()
        if self._busy and self._cancel_at is None:
            self._cancel_at = time.monotonic()

    def close(self, timeout: float = 3.0) -> None:
        """Stop the engine process (asking first, then killing); a running job raises Cancelled."""
        with self._state_lock:
            proc, conn = self._proc, self._conn
            if proc is None:
                return
            self._closing = True
            self._cancel_event.set()
            with contextlib.suppress(Exception):
                conn.send(("exit", 0))
            proc.join(timeout)
            self._kill()

    # --- internals ------------------------------------------------------------------------------------------
    def _next_job(self) -> int:
        self._job_id += 1
        return self._job_id

    def _send(self, msg: tuple) -> None:
        try:
            self._conn.send(msg)
        except (OSError, ValueError, AttributeError) as exc:
            code = self._reap()
            raise EngineCrashed(self._crash_text(code)) from exc

    @staticmethod
    def _recv(proc, conn, timeout: float):
        """The next message, or None after ``timeout``; _ChildGone when the process ended."""
        try:
            ready = wait([conn, proc.sentinel], timeout)
            if conn in ready or conn.poll():
                return conn.recv()
        except (EOFError, OSError, ValueError):
            raise _ChildGone from None
        if proc.sentinel in ready:
            raise _ChildGone
        return None

    def _wait_for_result(self, job: int, out_path: str, progress: ProgressFn) -> InferenceResult:
        proc, conn = self._proc, self._conn
        while True:
            if self._cancel_at is not None and time.monotonic() - self._cancel_at > self.cancel_grace_s:
                self._kill()
                raise Cancelled("cancelled by the user (the AI engine was stopped; it restarts on the next run)")
            try:
                msg = self._recv(proc, conn, POLL_S)
            except _ChildGone:
                code = self._reap()
                if self._closing or self._cancel_at is not None:
                    raise Cancelled("cancelled by the user") from None
                raise EngineCrashed(self._crash_text(code)) from None
            if msg is None or msg[1] != job:
                continue  # a poll timeout, or the answer to an earlier warm-up
            kind = msg[0]
            if kind == "progress":
                self._relay(progress, msg[2], msg[3])
            elif kind == "result":
                result = msg[2]
                if msg[3]:
                    try:
                        result = replace(result, labels=np.load(out_path, allow_pickle=False))
                    except (OSError, ValueError) as exc:
                        raise ModelError(f"cannot read the AI engine's label map: {exc}") from exc
                return result
            elif kind == "cancelled":
                raise Cancelled(msg[2])
            elif kind == "error":
                raise ModelError(msg[2])

    def _relay(self, progress: ProgressFn, fraction: float, message: str) -> None:
        try:
            progress(fraction, message)
        except Cancelled:
            self.cancel()
        except BaseException:
            self._kill()  # the job's owner is gone: do not leave the engine busy with it
            raise

    @staticmethod
    def _crash_text(code) -> str:
        return f"the AI engine stopped unexpectedly (exit code {code}); it will restart on the next run"

    def _reap(self):
        """Join a finished process and forget it; its exit code."""
        with self._state_lock:
            proc = self._proc
            if proc is None:
                return None
            proc.join(1.0)
            code = proc.exitcode
            self._kill()
            return code

    def _kill(self) -> None:
        with self._state_lock:
            proc, conn = self._proc, self._conn
            self._proc = self._conn = None
            self._pid = None
            if proc is not None:
                if proc.is_alive():
                    proc.kill()
                proc.join(2.0)
                with contextlib.suppress(Exception):
                    proc.close()
            if conn is not None:
                conn.close()

    def _discard(self) -> None:
        if self._proc is not None and not self._proc.is_alive():
            self._kill()


# --- the child -----------------------------------------------------------------------------------------------
def _serve(conn, cancel_event, env: dict[str, str]) -> None:
    """The engine process: answer ``run`` / ``warmup`` messages until ``exit`` or the parent goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the GUI's terminal is for the GUI
    os.environ.update(env)
    try:
        from ai.engine import Engine

        engine = Engine()
    except BaseException as exc:
        conn.send(("fatal", 0, f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("hello", 0, os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        kind, job = msg[0], msg[1]
        if kind == "exit":
            return
        if kind == "warmup":
            try:
                conn.send(("warm", job, engine.warm_up()))
            except Exception as exc:
                conn.send(("error", job, f"the AI engine could not load torch: {type(exc).__name__}: {exc}"))
        elif kind == "run":
            _run_job(engine, conn, cancel_event, job, *msg[2:])


def _run_job(engine, conn, cancel_event, job: int, fields: dict, in_path: str, out_path: str) -> None:
    def progress(fraction: float, message: str) -> None:
        conn.send(("progress", job, float(fraction), str(message)))

    try:
        request = InferenceRequest(array=np.load(in_path, mmap_mode="c", allow_pickle=False), **fields)
        result = engine.run(request, progress, cancel_event)
        del request
        has_labels = result.labels is not None
        if has_labels:
            np.save(out_path, result.labels, allow_pickle=False)
            result = replace(result, labels=None)
        reply = ("result", job, result, has_labels)
    except Cancelled as exc:
        reply = ("cancelled", job, str(exc) or "cancelled by the user")
    except ModelError as exc:
        reply = ("error", job, str(exc))
    except Exception as exc:
        reply = ("error", job, f"the AI engine failed: {type(exc).__name__}: {exc}")
    try:
        conn.send(reply)
    except (EOFError, OSError):
        return
    except Exception as exc:  # the result did not pickle
        conn.send(("error", job, f"the AI engine could not return its result: {type(exc).__name__}: {exc}"))
