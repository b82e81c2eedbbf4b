"""PACS use cases the Query/Retrieve dialog and ``radview-cli pacs`` share: echo, query, retrieve, send, the local
database's search, and radview's background C-STORE receiver. Qt-free.

Each takes a frozen request and returns a result (``viewer.net.records`` / ``viewer.net.results``); the slow ones
take ``progress(done, total, message)`` and a ``threading.Event`` to cancel, and raise
:class:`~viewer.net.errors.NetError` (refused, timed out, rejected, failed — the message says which node and what
to check) or, when cancelled, :class:`~radview_base.cancel.Cancelled` (a cancelled retrieve's
:class:`~viewer.net.results.RetrieveCancelled` carries what had arrived; retrying the same request fetches only the
rest). A partial retrieve is a result whose ``complete`` is False, listing what failed and what is missing.

The protocol follows the node: a DIMSE node (AE title, host, port) is asked by C-FIND and retrieved by C-GET or
C-MOVE; a DICOMweb node (a URL) by QIDO-RS and WADO-RS; a node with both uses DIMSE unless the request names
``wado``/``dicomweb``.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from viewer.net.errors import NetError, SettingsError
from viewer.net.nodes import DEFAULT_CALLING_AET, LocalAE, Node, NodeBook, check_ae_title
from viewer.net.records import QueryCriteria, SeriesRecord, StudyRecord
from viewer.net.results import RetrieveResult, SendResult, StoredInstance

METHODS = ("get", "move", "wado")
PROTOCOLS = ("auto", "dimse", "dicomweb")
ProgressFn = Callable[[int, int, str], None]


def _protocol(node: Node, wanted: str) -> str:
    if wanted not in PROTOCOLS:
        raise SettingsError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {wanted!r}")
    if wanted == "auto":
        return "dimse" if node.is_dimse else "dicomweb"
    if wanted == "dimse" and not node.is_dimse:
        raise SettingsError(f"node {node.name} has no AE title, host and port: it cannot be reached by DIMSE")
    if wanted == "dicomweb" and not node.is_dicomweb:
        raise SettingsError(f"node {node.name} has no DICOMweb URL")
    return wanted


# ------------------------------------------------------------------------------------------------ echo
@dataclass(frozen=True)
class EchoRequest:
    node: Node
    calling_aet: str = DEFAULT_CALLING_AET
    protocol: str = "auto"


@dataclass(frozen=True)
class EchoResult:
    node: str
    protocol: str  # "dimse" (C-ECHO) or "dicomweb" (a QIDO-RS search)
    seconds: float

    def text(self) -> str:
        what = "C-ECHO" if self.protocol == "dimse" else "QIDO-RS"
        return f"{self.node}: {what} OK in {self.seconds * 1000:.0f} ms"


def echo(request: EchoRequest) -> EchoResult:
    """C-ECHO a DIMSE node, or run a one-result QIDO-RS search on a DICOMweb node (the settings' "Test")."""
    protocol = _protocol(request.node, request.protocol)
    if protocol == "dimse":
        from viewer.net.dimse_query import echo as c_echo

        seconds = c_echo(request.node, check_ae_title(request.calling_aet, "calling AE title"))
    else:
        from viewer.net.dicomweb import ping

        seconds = ping(request.node)
    return EchoResult(request.node.label, protocol, seconds)


# ------------------------------------------------------------------------------------------------ query
@dataclass(frozen=True)
class QueryRequest:
    node: Node
    criteria: QueryCriteria = QueryCriteria()
    calling_aet: str = DEFAULT_CALLING_AET
    protocol: str = "auto"


def query(request: QueryRequest, cancel: threading.Event | None = None) -> list[StudyRecord] | list[SeriesRecord]:
    """Studies or series on the node matching the criteria (C-FIND or QIDO-RS)."""
    if _protocol(request.node, request.protocol) == "dimse":
        from viewer.net.dimse_query import find

        return find(request.node, check_ae_title(request.calling_aet, "calling AE title"), request.criteria, cancel)
    from viewer.net.dicomweb import search

    return search(request.node, request.criteria, cancel)


def series_of(node: Node, study_uid: str, calling_aet: str = DEFAULT_CALLING_AET,
              cancel: threading.Event | None = None) -> list[SeriesRecord]:
    """The series of one study on the node (the dialog's second table)."""
    return query(QueryRequest(node, QueryCriteria(level="series", study_uid=study_uid), calling_aet), cancel)


def search_local(criteria: QueryCriteria | None = None, database=None) -> list[StudyRecord]:
    """Studies in the local database matching ``criteria`` (the study browser's search; None: all)."""
    from viewer.net.study_db import StudyDatabase

    criteria = criteria or QueryCriteria()
    if database is not None:
        return database.search(criteria)
    with StudyDatabase() as db:
        return db.search(criteria)


# ------------------------------------------------------------------------------------------------ retrieve
@dataclass(frozen=True)
class RetrieveRequest:
    """Retrieve a study (or one series). ``method``: ``get``, ``move`` or ``wado`` ("" picks C-GET for a DIMSE node,
    WADO-RS for a DICOMweb one). ``out_dir``: a plain folder; empty: the local study database. ``local``: the AE
    title / address / port radview's C-STORE SCP answers on for C-MOVE (``calling_aet`` is the title C-MOVE names
    as its destination and must be the SCP's)."""

    node: Node
    study_uid: str
    series_uid: str = ""
    method: str = ""
    calling_aet: str = DEFAULT_CALLING_AET
    out_dir: str = ""
    local: LocalAE = field(default_factory=LocalAE)

    def __post_init__(self):
        if not self.study_uid:
            raise SettingsError("a retrieve needs a study UID")
        method = self.method or ("get" if self.node.is_dimse else "wado")
        if method not in METHODS:
            raise SettingsError(f"retrieve method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if method in ("get", "move") and not self.node.is_dimse:
            raise SettingsError(f"node {self.node.name} is a DICOMweb node: retrieve it with wado, not {method}")
        if method == "wado" and not self.node.is_dicomweb:
            raise SettingsError(f"node {self.node.name} has no DICOMweb URL: retrieve it with get or move")
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "calling_aet", check_ae_title(self.calling_aet, "calling AE title"))


def retrieve(request: RetrieveRequest, progress: ProgressFn | None = None, cancel: threading.Event | None = None,
             on_instance: Callable[[StoredInstance], None] | None = None, database=None, scp=None) -> RetrieveResult:
    """Fetch the study/series into ``request.out_dir`` or the local database (``database``, or the default one).

    ``on_instance(stored)`` hears each instance as it is written (from a network thread: the first slice can show
    while the rest arrives). For C-MOVE, ``scp`` is radview's running receiver (``start_receiver``), and the
    instances go where it writes; without one a receiver is started on ``request.local`` for the duration, writing
    to the request's destination. A retry of the same request fetches only what is missing.
    """
    from viewer.net.sinks import FolderSink
    from viewer.net.study_db import StudyDatabase

    own_db = None
    if request.out_dir:
        sink = FolderSink(request.out_dir)
    elif database is not None:
        sink = database
    else:
        sink = own_db = StudyDatabase()
    try:
        if request.method == "wado":
            from viewer.net.dicomweb import wado_retrieve

            return wado_retrieve(request.node, request.study_uid, request.series_uid, sink, progress, cancel,
                                 on_instance)
        if request.method == "get":
            from viewer.net.dimse_retrieve import c_get

            return c_get(request.node, request.calling_aet, request.study_uid, request.series_uid, sink, progress,
                         cancel, on_instance)
        from viewer.net.dimse_retrieve import c_move

        if scp is not None and scp.running:
            if request.out_dir:
                raise SettingsError("radview's receiver is running and writes into the local study database: a "
                                    "C-MOVE into a folder needs C-GET, or the receiver stopped")
            if scp.ae_title != request.calling_aet:
                raise SettingsError(f"C-MOVE names {request.calling_aet} as its destination, but radview's receiver "
                                    f"answers as {scp.ae_title}")
            return c_move(request.node, request.calling_aet, request.study_uid, request.series_uid, scp, progress,
                          cancel, on_instance)
        from viewer.net.store_scp import StoreSCP

        local = LocalAE(request.calling_aet, request.local.host, request.local.port)
        with StoreSCP(sink, local, allowed=[request.node]) as own_scp:
            return c_move(request.node, request.calling_aet, request.study_uid, request.series_uid, own_scp,
                          progress, cancel, on_instance)
    finally:
        if own_db is not None:
            own_db.close()


# ------------------------------------------------------------------------------------------------ send
@dataclass(frozen=True)
class SendRequest:
    """Send DICOM files (radview's exports) to a node: C-STORE for a DIMSE node, STOW-RS for a DICOMweb one."""

    node: Node
    paths: tuple[str, ...]
    calling_aet: str = DEFAULT_CALLING_AET
    protocol: str = "auto"

    def __post_init__(self):
        object.__setattr__(self, "paths", tuple(str(p) for p in self.paths))
        if not self.paths:
            raise SettingsError("nothing to send")


def send(request: SendRequest, progress: ProgressFn | None = None, cancel: threading.Event | None = None
         ) -> SendResult:
    if _protocol(request.node, request.protocol) == "dimse":
        from viewer.net.dimse_send import c_store

        return c_store(request.node, check_ae_title(request.calling_aet, "calling AE title"), request.paths,
                       progress, cancel)
    from viewer.net.dicomweb import stow

    return stow(request.node, request.paths, progress, cancel)


# ------------------------------------------------------------------------------------------------ receiver
def start_receiver(book: NodeBook, database=None, on_instance: Callable[[StoredInstance], None] | None = None,
                   on_refused: Callable[[str, str], None] | None = None,
                   on_received: Callable[[StoredInstance, str], None] | None = None):
    """radview's background C-STORE SCP on the book's local AE (127.0.0.1 unless configured), accepting the book's
    DIMSE nodes only, writing each instance atomically into ``database`` (default: the local study database), which
    indexes it. ``on_instance(item)`` / ``on_received(item, calling AE title)`` hear each stored instance and
    ``on_refused(calling AE title, address)`` each association turned away (from network threads). Stop it with
    ``.stop()``. A port in use (or an address that is not this computer's) is a
    :class:`~viewer.net.errors.ConnectFailed` that says so."""
    from viewer.net.store_scp import StoreSCP
    from viewer.net.study_db import StudyDatabase

    sink = database if database is not None else StudyDatabase()
    return StoreSCP(sink, book.local, allowed=[n for n in book.nodes if n.is_dimse], on_instance=on_instance,
                    on_refused=on_refused, on_received=on_received).start()


def receiver_allowed(book: NodeBook) -> list[str]:
    """The nodes the receiver accepts, as ``AE@host`` (what the settings dialog shows)."""
    return [f"{n.ae_title}@{n.host}" for n in book.nodes if n.is_dimse]


__all__ = ["EchoRequest", "EchoResult", "QueryRequest", "RetrieveRequest", "SendRequest", "echo", "query",
           "series_of", "search_local", "retrieve", "send", "start_receiver", "receiver_allowed", "NetError",
           "METHODS"]
