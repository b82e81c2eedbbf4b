"""One background writer thread for an autosave: keyed jobs, the newest job of a key wins, written in order.

The three autosaves (:mod:`.annotation_store`, :mod:`.layer_store`, :mod:`.classification_store`) take a snapshot
on the caller's (GUI) thread and hand it here as a job under a key (the file it goes to). :class:`AutosaveWriter`
runs ``write(key, job)`` on its own thread, one job at a time, keys in the order they were first queued; a job
queued while an older one of its key still waits replaces it (or is merged into it, by the ``supersede``
function), so only the newest snapshot of a file is written. ``generation`` counts the jobs queued;
``saved_generation`` is the highest generation up to which every job is written, superseded by a newer job that is
written, or failed and reported. A job can wait (``not_before``, a :func:`time.monotonic` time: e.g. until the GUI
has drawn what just arrived) unless a newer job of its key replaces it, :meth:`flush` or :meth:`close` hurries it.

A write that raises is handed to ``on_error(key, job, exc)`` (on the writer thread) and the writer goes on with the
next job; nothing queued is ever dropped: :meth:`close` writes everything pending before the thread stops, and a job
queued after that is not silently lost but reported to ``on_error`` as not written. :class:`AutosaveBase` is what
the autosaves share around it (generations, flush, close). Qt-free.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable

log = logging.getLogger(__name__)


class WriterClosedError(RuntimeError):
    """A job queued after :meth:`AutosaveWriter.close`: it was not written."""


@dataclass
class _Entry:
    job: Any
    first: int  # the generation of the oldest change this entry carries (not yet on disk)
    not_before: float


class AutosaveWriter:
    """Writes keyed jobs on one thread (see the module docstring).

    ``write(key, job)`` writes one job (raises on failure); ``on_error(key, job, exc)`` reports a failure;
    ``on_saved(saved_generation)`` is called, after a write, whenever ``saved_generation`` moved; ``supersede(old,
    new)`` returns the job to keep when ``new`` is queued while ``old`` of the same key waits (default: ``new``).
    The callbacks run on the writer thread, except ``supersede`` (the caller's) and a closed writer's ``on_error``.
    """

    def __init__(self, write: Callable[[Hashable, Any], None], on_error: Callable[[Hashable, Any, Exception], None],
                 name: str, on_saved: Callable[[int], None] | None = None,
                 supersede: Callable[[Any, Any], Any] | None = None) -> None:
        self._write, self._on_error, self._on_saved, self._supersede = write, on_error, on_saved, supersede
        self.generation = 0
        self.saved_generation = 0
        self._cond = threading.Condition()
        self._pending: dict[Hashable, _Entry] = {}  # insertion order: the order keys are written in
        self._in_flight: Hashable | None = None
        self._busy = False  # a job is being written (its key may be None)
        self._hurry = 0  # flushes waiting: nothing waits for its ``not_before`` any more
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """The writer thread runs (not closed yet)."""
        return self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def put(self, key: Hashable, job: Any, not_before: float = 0.0) -> int:
        """Queue ``job`` for ``key`` (replacing or merging into one that waits); its generation, 0 when the writer is
        closed (then ``on_error`` is told, on this thread, and nothing is queued)."""
        with self._cond:
            if self._stopping:
                closed = True
            else:
                closed = False
                self.generation += 1
                generation = self.generation
                self._cond.notify_all()  # a writer letting a job wait looks again
                entry = self._pending.get(key)
                if entry is None:
                    self._pending[key] = _Entry(job, generation, not_before)
                else:
                    kept = self._supersede(entry.job, job) if self._supersede is not None else job
                    if kept is not entry.job:  # a newer job: its own wait (a merged one keeps the older's)
                        entry.job, entry.not_before = kept, not_before
        if closed:
            self._report(key, job, WriterClosedError("the autosave was closed before this change"))
            return 0
        return generation

    def busy(self, match: Callable[[Hashable], bool]) -> bool:
        """True when a job of a key for which ``match`` is true waits or is being written."""
        with self._cond:
            return any(match(key) for key in self._pending) or (self._busy and match(self._in_flight))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every job queued before the call is written (or failed and reported); False on timeout."""
        with self._cond:
            target = self.generation
            self._hurry += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self.saved_generation >= target, timeout)
            finally:
                self._hurry -= 1

    def close(self, timeout: float = 30.0) -> None:
        """Write everything pending (waits end at once), then stop the thread (waiting for it up to ``timeout``)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # --- the writer thread ------------------------------------------------------------------------------------
    def _next(self) -> tuple[Hashable, _Entry] | None:
        """The next job to write, once its wait is over (None: closed and nothing left). Caller holds the lock."""
        while not self._pending:
            if self._stopping:
                return None
            self._cond.wait()
        key = next(iter(self._pending))
        entry = self._pending[key]  # replaced in place, never removed, while it waits
        while not self._hurry and not self._stopping and entry.not_before > time.monotonic():
            self._cond.wait(entry.not_before - time.monotonic())
        del self._pending[key]
        self._in_flight, self._busy = key, True
        return key, entry

    def _run(self) -> None:
        while True:
            with self._cond:
                nxt = self._next()
            if nxt is None:
                return
            key, entry = nxt
            try:
                self._write(key, entry.job)
            except Exception as exc:  # noqa: BLE001 - reported; the writer thread must live on (MemoryError too)
                self._report(key, entry.job, exc)
            with self._cond:
                self._in_flight, self._busy = None, False
                before = self.saved_generation
                waiting = [e.first for e in self._pending.values()]
                self.saved_generation = max(before, (min(waiting) - 1) if waiting else self.generation)
                saved = self.saved_generation
                self._cond.notify_all()
            if saved != before and self._on_saved is not None:
                try:
                    self._on_saved(saved)
                except Exception:  # noqa: BLE001 - a receiver's fault must not stop the writer
                    log.exception("autosave: a 'saved' receiver failed")

    def _report(self, key: Hashable, job: Any, exc: Exception) -> None:
        try:
            self._on_error(key, job, exc)
        except Exception:  # noqa: BLE001 - the report failed too: at least the log has it
            log.exception("autosave: a write of %r failed (%s) and so did its report", key, exc)


class AutosaveBase:
    """What the three autosaves share around their writer (``_writer``): ``generation`` (changes scheduled),
    ``saved_generation`` (changes on disk, or failed and reported), :meth:`flush`, and :meth:`close`, which
    disconnects ``_connections`` (``(signal, slot)`` pairs), writes what is pending and stops the thread.
    A subclass has the psygnal signals ``saved`` (generation) and ``save_failed`` (message)."""

    CLOSE_TIMEOUT_S = 30.0
    _writer: AutosaveWriter
    _connections: tuple = ()

    @property
    def generation(self) -> int:
        return self._writer.generation

    @property
    def saved_generation(self) -> int:
        return self._writer.saved_generation

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every scheduled change is on disk (or failed); False on timeout. Nothing settles meanwhile."""
        return self._writer.flush(timeout)

    def close(self) -> None:
        """Write what is pending and stop the writer thread."""
        if not self._writer.alive:
            return
        for signal, slot in self._connections:
            try:
                signal.disconnect(slot)
            except (ValueError, RuntimeError):
                pass
        self.flush()
        self._writer.close(self.CLOSE_TIMEOUT_S)

    def _report_failure(self, message: str) -> None:
        """A write failed (writer thread): kept in ``last_error`` and said through ``save_failed``."""
        self.last_error = message
        self.save_failed.emit(message)


__all__ = ["AutosaveBase", "AutosaveWriter", "WriterClosedError"]
