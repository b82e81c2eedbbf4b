"""The shared autosave writer (viewer/store/autosave_writer.py), on real threads: the newest job of a key wins,
flush waits for what was queued, close writes what is pending, a failed write is reported and the writer goes on,
and no write ever runs on the caller's thread."""
from __future__ import annotations

import threading
import time

import pytest

from viewer.store.autosave_writer import AutosaveWriter, WriterClosedError


class Recorder:
    """A writer whose writes are recorded (key, job, thread); ``gate`` holds every write until it is set."""

    def __init__(self, fail: set | None = None, **kwargs) -> None:
        self.writes: list[tuple] = []
        self.errors: list[tuple] = []
        self.saved: list[tuple[int, threading.Thread]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()  # a write has begun
        self.fail = fail or set()
        self.writer = AutosaveWriter(self._write, self._error, "test-autosave",
                                     on_saved=lambda g: self.saved.append((g, threading.current_thread())), **kwargs)

    def _write(self, key, job) -> None:
        self.started.set()
        assert self.gate.wait(10)
        if key in self.fail:
            raise OSError(f"disk full writing {key}")
        self.writes.append((key, job, threading.current_thread()))

    def _error(self, key, job, exc) -> None:
        self.errors.append((key, job, exc, threading.current_thread()))

    def written(self) -> list[tuple]:
        return [(key, job) for key, job, _thread in self.writes]


@pytest.fixture
def rec():
    r = Recorder()
    yield r
    r.gate.set()
    r.writer.close(timeout=10)


def test_only_the_newest_waiting_job_of_a_key_is_written_keys_in_order(rec):
    rec.gate.clear()
    rec.writer.put("a", 1)
    assert rec.started.wait(5)  # "a"=1 is being written (held at the gate)
    for key, job in (("a", 2), ("b", 1), ("a", 3), ("c", 1), ("b", 2), ("a", 4)):
        rec.writer.put(key, job)
    assert rec.writer.generation == 7 and rec.writer.saved_generation == 0
    rec.gate.set()
    assert rec.writer.flush(10)
    # "a"=1 was in flight; then the keys in the order they were first queued, each with its newest job only
    assert rec.written() == [("a", 1), ("a", 4), ("b", 2), ("c", 1)]
    assert rec.writer.saved_generation == rec.writer.generation == 7
    assert [g for g, _t in rec.saved] == sorted({g for g, _t in rec.saved}) and rec.saved[-1][0] == 7


def test_flush_waits_for_everything_queued_before_it(rec):
    rec.gate.clear()
    for n in range(5):
        rec.writer.put(f"k{n}", n)
    assert rec.started.wait(5)
    t0 = time.monotonic()
    assert rec.writer.flush(0.3) is False  # the writes are held: flush gives up after its timeout
    assert time.monotonic() - t0 >= 0.25 and rec.writes == []
    threading.Timer(0.2, rec.gate.set).start()
    assert rec.writer.flush(10)
    assert rec.written() == [(f"k{n}", n) for n in range(5)]  # all of them, when flush returned


def test_close_writes_what_is_pending_even_a_job_that_waits_then_stops(rec):
    rec.gate.clear()
    rec.writer.put("a", 1)
    assert rec.started.wait(5)
    rec.writer.put("b", 1, not_before=time.monotonic() + 600)  # would wait ten minutes
    rec.writer.put("a", 2)
    threading.Timer(0.2, rec.gate.set).start()
    t0 = time.monotonic()
    rec.writer.close(timeout=10)
    assert time.monotonic() - t0 < 9 and not rec.writer.alive
    assert rec.written() == [("a", 1), ("b", 1), ("a", 2)]
    assert rec.writer.saved_generation == rec.writer.generation == 3


def test_a_job_queued_after_close_is_reported_not_written(rec):
    rec.writer.put("a", 1)
    rec.writer.close(timeout=10)
    assert rec.writer.put("a", 2) == 0 and rec.writer.generation == 1
    assert rec.written() == [("a", 1)]
    ((key, job, exc, _thread),) = rec.errors
    assert (key, job) == ("a", 2) and isinstance(exc, WriterClosedError)
    assert rec.writer.flush(1)  # nothing is owed: a flush after close does not hang


def test_a_failed_write_is_reported_and_the_writer_goes_on():
    r = Recorder(fail={"bad"})
    try:
        r.writer.put("good1", 1)
        r.writer.put("bad", "lost?")
        r.writer.put("good2", 2)
        assert r.writer.flush(10)
        assert r.written() == [("good1", 1), ("good2", 2)]
        ((key, job, exc, thread),) = r.errors
        assert (key, job) == ("bad", "lost?") and isinstance(exc, OSError) and "disk full" in str(exc)
        assert thread is r.writer.thread  # reported on the writer thread
        r.fail.clear()
        r.writer.put("bad", "again")  # the caller may queue it again: it is written this time
        assert r.writer.flush(10) and r.written()[-1] == ("bad", "again")
        assert r.writer.alive and r.writer.saved_generation == r.writer.generation == 4
    finally:
        r.writer.close(timeout=10)


def test_an_error_in_the_error_report_does_not_stop_the_writer():
    writes = []

    def write(key, job):
        if key == "bad":
            raise ValueError("no")
        writes.append(key)

    def broken_report(key, job, exc):
        raise RuntimeError("the report itself fails")

    w = AutosaveWriter(write, broken_report, "test-autosave")
    try:
        w.put("bad", 0)
        w.put("good", 1)
        assert w.flush(10) and writes == ["good"] and w.alive
    finally:
        w.close(timeout=10)


def test_writes_never_run_on_the_callers_thread(rec):
    caller = threading.current_thread()
    for n in range(20):
        rec.writer.put(n % 3, n)
    assert rec.writer.flush(10)
    rec.writer.close(timeout=10)
    threads = {t for _k, _j, t in rec.writes} | {t for _g, t in rec.saved}
    assert threads == {rec.writer.thread} and caller not in threads and rec.writer.thread.name == "test-autosave"


def test_a_waiting_job_is_written_once_its_time_comes_or_at_once_when_flushed_or_replaced(rec):
    t0 = time.monotonic()
    rec.writer.put("a", 1, not_before=t0 + 0.4)
    time.sleep(0.15)
    assert rec.writes == [] and rec.writer.busy(lambda k: k == "a")
    deadline = time.monotonic() + 10
    while not rec.writes and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.written() == [("a", 1)] and time.monotonic() - t0 >= 0.35  # no flush: it waited, then went
    rec.writer.put("b", 1, not_before=time.monotonic() + 600)
    t1 = time.monotonic()
    assert rec.writer.flush(10) and time.monotonic() - t1 < 5 and rec.written()[-1] == ("b", 1)  # flush hurries it
    rec.writer.put("c", 1, not_before=time.monotonic() + 600)
    rec.writer.put("c", 2)  # a newer job of the key, without a wait, replaces the waiting one
    deadline = time.monotonic() + 5
    while rec.written()[-1] != ("c", 2) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rec.written()[-1] == ("c", 2) and ("c", 1) not in rec.written()
    assert not rec.writer.busy(lambda k: True)


def test_supersede_can_merge_into_the_waiting_job_which_keeps_its_wait():
    def supersede(old: dict, new: dict) -> dict:
        if new.get("merge"):
            old.update(new["merge"])
            return old
        return new

    r = Recorder(supersede=supersede)
    try:
        r.writer.put("a", {"v": 1}, not_before=time.monotonic() + 0.3)
        r.writer.put("a", {"merge": {"w": 2}})  # merged: still waits
        time.sleep(0.1)
        assert r.writes == []
        assert r.writer.flush(10)
        assert r.written() == [("a", {"v": 1, "w": 2})] and r.writer.saved_generation == 2
    finally:
        r.writer.close(timeout=10)


def test_busy_sees_a_job_while_it_is_written(rec):
    rec.gate.clear()
    rec.writer.put(("study", "x"), 1)
    assert rec.started.wait(5)
    assert rec.writer.busy(lambda k: k[0] == "study") and not rec.writer.busy(lambda k: k[0] == "other")
    rec.gate.set()
    assert rec.writer.flush(10) and not rec.writer.busy(lambda k: k[0] == "study")
