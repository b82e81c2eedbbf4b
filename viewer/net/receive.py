"""Receiving instances: the C-STORE handler C-GET and radview's C-STORE SCP share, the writer threads behind it,
and the tally of what came.

:func:`store_handler` returns a pynetdicom ``EVT_C_STORE`` handler that hands the data set, as it came (its bytes
are not copied nor decoded: ``viewer.net.store_file.ReceivedDataSet``), to an :class:`InstanceWriter`: a few threads
that read each instance's header (its first elements, never its pixels), put the file meta in front and write it
atomically into a sink (``viewer.net.sinks.write_atomic``: temporary file, data synced, rename), not again when it
is already there. The node waits for the response to each instance before it sends the next, so the handler does
nothing else; writing overlaps with receiving the next instance — syncing a file costs milliseconds, as much as its
transfer. While a retrieve of ours runs, instances are acknowledged once received (the retrieve drains the writer
and checks its destination before it reports, so a failed write shows up as failed and missing, and a retry fetches
it); otherwise (a push from a modality) only after they are written, with a failure status when they could not be
(out of resources; cannot understand when an instance has no UIDs). :class:`Tally` counts what arrived, what was
there already and what failed, notes the time of the first arrival, and calls ``on_instance`` for each (from a
writer thread).
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from io import BytesIO
from typing import Callable

from viewer.net.instance_header import HeaderError, InstanceHeader, header_of_bytes
from viewer.net.results import StoredInstance
from viewer.net.sinks import InstanceSink, bytes_writer
from viewer.net.store_file import ReceivedDataSet

OnInstance = Callable[[StoredInstance], None]
OnFailed = Callable[[str, str], None]
STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_CANNOT_UNDERSTAND = 0xC000
WRITER_THREADS = 4
MAX_PENDING = 16  # instances received but not yet written (bounds the memory they hold)


class Tally:
    """What one retrieve received, filled from the network and writer threads."""

    def __init__(self, on_instance: OnInstance | None = None):
        self.on_instance = on_instance
        self.started = time.perf_counter()
        self._lock = threading.Lock()
        self.arrived: list[str] = []
        self.duplicates: list[str] = []
        self.failed: list[tuple[str, str]] = []
        self.first_s: float | None = None
        self.final_status: int | None = None  # of the last C-GET/C-MOVE request
        self.completed: int | None = None  # sub-operations its final response counted as completed

    def stored(self, item: StoredInstance) -> None:
        with self._lock:
            if self.first_s is None:
                self.first_s = time.perf_counter() - self.started
            (self.arrived if item.new else self.duplicates).append(item.header.sop_uid)
        if self.on_instance is not None:
            try:
                self.on_instance(item)
            except Exception:  # a listener's bug must not lose the instance nor stop the retrieve
                logging.getLogger(__name__).exception("on_instance failed for %s", item.path)

    def fail(self, sop_uid: str, reason: str) -> None:
        with self._lock:
            self.failed.append((sop_uid, reason))

    def final(self, status: int, completed) -> None:
        with self._lock:
            self.final_status = status
            self.completed = None if completed is None else int(completed)

    @property
    def clean(self) -> bool:
        """The node reported success and nothing failed here."""
        with self._lock:
            return self.final_status == 0 and not self.failed

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.arrived) + len(self.duplicates)

    @property
    def new_count(self) -> int:
        with self._lock:
            return len(self.arrived)


class InstanceWriter:
    """Writes instances into ``sink`` on a few threads; ``submit`` blocks while ``max_pending`` are waiting."""

    def __init__(self, sink: InstanceSink, threads: int = WRITER_THREADS, max_pending: int = MAX_PENDING):
        self.sink = sink
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="radview-net-write")
        self._slots = threading.BoundedSemaphore(max_pending)
        self._lock = threading.Lock()
        self._pending: set[Future] = set()

    def submit(self, data: bytes, sop_uid: str, on_stored: OnInstance, on_failed: OnFailed) -> Future:
        """Read the header of the encoded instance ``data`` and write it; the future's result is the DIMSE status
        (success, or why not — ``on_failed`` heard the reason)."""
        return self._submit(lambda: header_of_bytes(data), lambda: bytes_writer(data), sop_uid, on_stored, on_failed)

    def submit_received(self, received: ReceivedDataSet, on_stored: OnInstance, on_failed: OnFailed) -> Future:
        """Read the header of a C-STORE's data set and write it with its file meta (both here, not in the handler)."""
        return self._submit(received.header, lambda: received.write, received.sop_uid, on_stored, on_failed)

    def submit_dataset(self, header: InstanceHeader, write: Callable[[str], None], on_stored: OnInstance,
                       on_failed: OnFailed) -> Future:
        """Write an instance already read (a WADO-RS part): ``write(path)`` writes its file."""
        return self._submit(lambda: header, lambda: write, header.sop_uid, on_stored, on_failed)

    def _submit(self, get_header, get_writer, sop_uid: str, on_stored: OnInstance, on_failed: OnFailed) -> Future:
        self._slots.acquire()

        def work() -> int:
            try:
                header = get_header()
            except HeaderError as exc:
                on_failed(sop_uid, f"unreadable instance: {exc}")
                return STATUS_CANNOT_UNDERSTAND
            except Exception as exc:  # pydicom's surprise on a malformed data set: reported, never lost
                on_failed(sop_uid, f"unreadable instance: {type(exc).__name__}: {exc}")
                return STATUS_CANNOT_UNDERSTAND
            try:
                item = self.sink.put(header, get_writer())
            except OSError as exc:
                on_failed(header.sop_uid, f"cannot write it: {exc.strerror or exc}")
                return STATUS_OUT_OF_RESOURCES
            except Exception as exc:  # the index (SQLite) or a sink's bug: reported, never lost
                on_failed(header.sop_uid, f"cannot store it: {type(exc).__name__}: {exc}")
                return STATUS_OUT_OF_RESOURCES
            on_stored(item)
            return STATUS_SUCCESS

        try:
            future = self._pool.submit(work)
        except BaseException:
            self._slots.release()
            raise
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)
        return future

    def _done(self, future: Future) -> None:
        with self._lock:
            self._pending.discard(future)
        self._slots.release()

    def drain(self) -> None:
        """Wait until every instance submitted so far is written (or failed); make the new names durable."""
        with self._lock:
            pending = list(self._pending)
        for f in pending:
            f.exception()
        self.sink.flush()

    def close(self) -> None:
        self.drain()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> InstanceWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def calling_ae_of(event) -> str:
    """The calling AE title of the association an event belongs to ("" when it cannot be told)."""
    try:
        return str(event.assoc.requestor.ae_title or "").strip()
    except AttributeError:
        return ""


def store_handler(writer: InstanceWriter, on_stored: OnInstance, on_failed: OnFailed,
                  acknowledge_early: Callable[[], bool] = lambda: True,
                  stored_from: Callable[[str], OnInstance] | None = None):
    """An ``EVT_C_STORE`` handler writing through ``writer``; ``on_stored(item)`` / ``on_failed(sop_uid, reason)``.

    ``acknowledge_early()`` True: answer success once the instance is received (a retrieve that checks its
    destination afterwards is running); False: wait for the write and answer its outcome. ``stored_from(calling
    AE title)``, when given, returns the ``on_stored`` for the instances of that sender (radview's receiver tells
    who sent what).
    """

    def handle(event) -> int:
        request = event.request
        sop_uid = str(getattr(request, "AffectedSOPInstanceUID", "") or "")
        stored = on_stored if stored_from is None else stored_from(calling_ae_of(event))
        data = getattr(request, "DataSet", None)
        if isinstance(data, BytesIO):  # as received: file meta and header are made in the writer thread
            received = ReceivedDataSet(data, str(getattr(request, "AffectedSOPClassUID", "") or ""), sop_uid,
                                       str(event.context.transfer_syntax))
            future = writer.submit_received(received, stored, on_failed)
        else:
            try:
                encoded = event.encoded_dataset()
            except (ValueError, AttributeError) as exc:
                on_failed(sop_uid, f"unreadable instance: {exc}")
                return STATUS_CANNOT_UNDERSTAND
            future = writer.submit(encoded, sop_uid, stored, on_failed)
        if acknowledge_early():
            return STATUS_SUCCESS
        status = future.result()
        if status == STATUS_SUCCESS:
            writer.sink.flush()  # acknowledged as stored: its name is durable too
        return status

    return handle
