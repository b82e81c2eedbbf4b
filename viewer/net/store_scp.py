"""radview's own C-STORE SCP: it receives the instances a C-MOVE sends (or that a modality pushes) in the background.

    scp = StoreSCP(database, LocalAE("RADVIEW", "127.0.0.1", 11112), allowed=[node], on_instance=show)
    scp.start()          # a pynetdicom server thread; scp.port is the port it listens on
    ...
    scp.stop()

It listens on the local AE's address — 127.0.0.1 unless the user configured another — and accepts associations only
from the configured nodes: the calling AE title and the peer's address must both match one of ``allowed``
(anything else is rejected with "calling AE title not recognised" and noted in ``refused``). It answers C-ECHO, and
C-STORE of every storage SOP class in every transfer syntax, writing each instance atomically into its sink
(``viewer.net.sinks`` / ``viewer.net.study_db``) as it came (not decoded, not again when already there) on the
writer threads of ``viewer.net.receive``: while a retrieve of ours runs, instances are acknowledged on receipt (the
retrieve checks its destination afterwards), otherwise only once they are written.
``on_instance`` hears every stored instance (from a network thread), ``on_received(item, calling AE title)`` too,
with the title of the node that sent it; a C-MOVE registers a listener for the instances it asked for
(``listening``) so that its result counts exactly those. A listener's error is logged, never lost with the
instance.
"""
from __future__ import annotations

import functools
import logging
import socket
import socketserver
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

from viewer.net.association import fast_exchange_handlers
from viewer.net.errors import ConnectFailed
from viewer.net.nodes import LocalAE, Node
from viewer.net.receive import InstanceWriter, OnInstance, Tally, store_handler
from viewer.net.results import StoredInstance
from viewer.net.sinks import InstanceSink

POLL_S = 0.05  # how often the serving thread looks for a stop
_REJECTED_PERMANENT, _SOURCE_SERVICE_USER, _CALLING_AE_NOT_RECOGNISED = 0x01, 0x01, 0x03


@functools.lru_cache(maxsize=1)
def supported_contexts() -> list:
    """Verification, and every storage SOP class in every transfer syntax (built once: it takes 0.15 s)."""
    from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, build_context
    from pynetdicom.sop_class import Verification

    return [build_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES) for cx in AllStoragePresentationContexts] + \
        [build_context(Verification)]


def _addresses(host: str) -> set[str]:
    try:
        return {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return set()


class StoreSCP:
    """A C-STORE SCP writing into ``sink``; accepts only the nodes in ``allowed``."""

    def __init__(self, sink: InstanceSink, local: LocalAE | None = None, allowed: Sequence[Node] = (),
                 on_instance: OnInstance | None = None, on_refused: Callable[[str, str], None] | None = None,
                 on_received: Callable[[StoredInstance, str], None] | None = None):
        local = local or LocalAE()
        self.sink = sink
        self.local = local
        self.ae_title = local.ae_title
        self.host = local.host
        self.port = local.port
        self.on_instance = on_instance
        self.on_refused = on_refused
        self.on_received = on_received
        self.refused: list[tuple[str, str]] = []  # (calling AE title, address) turned away
        self.failed: list[tuple[str, str]] = []  # (SOP Instance UID, reason) not stored
        self._allowed = [(n.ae_title, n.host) for n in allowed if n.is_dimse]
        self._allowed_ips: list[tuple[str, set[str]]] = []
        self._routes: list[tuple[Callable, Tally]] = []
        self._lock = threading.Lock()
        self._busy = 0
        self._idle = threading.Condition(self._lock)
        self._server = None
        self._thread: threading.Thread | None = None
        self._writer: InstanceWriter | None = None

    # ------------------------------------------------------------------ life
    def start(self) -> StoreSCP:
        from pynetdicom import AE, evt
        from pynetdicom.transport import ThreadedAssociationServer

        if self._server is not None:
            return self
        self._allowed_ips = [(ae, _addresses(host)) for ae, host in self._allowed]
        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 1 << 20
        self._writer = InstanceWriter(self.sink)
        handler = store_handler(self._writer, self._stored, self._failed, acknowledge_early=self._retrieving,
                                stored_from=self._stored_from)
        handlers = fast_exchange_handlers() + [(evt.EVT_REQUESTED, self._on_requested),
                                               (evt.EVT_C_STORE, self._counted(handler))]
        try:
            server = ae.make_server((self.host, self.port), contexts=supported_contexts(), evt_handlers=handlers,
                                    server_class=ThreadedAssociationServer)
        except OSError as exc:
            self._writer.close()
            self._writer = None
            raise ConnectFailed(f"radview's DICOM receiver cannot listen on {self.host}:{self.port}: "
                                f"{exc.strerror or exc} (is another program using the port?)") from exc
        # our own serving thread: pynetdicom's polls for shutdown every 0.5 s, which every stop would wait for
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL_S},
                                        name="radview-store-scp", daemon=True)
        self._thread.start()
        self._server = server
        self.port = int(server.server_address[1])
        return self

    def stop(self) -> None:
        """Stop listening (instances being received finish and are written)."""
        server, self._server = self._server, None
        if server is not None:
            socketserver.BaseServer.shutdown(server)  # (pynetdicom's shutdown() expects its own serving thread)
            server.server_close()
            self._thread.join()
        self.wait_idle()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> StoreSCP:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ who may call
    def _allows(self, calling: str, address: str) -> bool:
        return any(calling == ae and address in ips for ae, ips in self._allowed_ips)

    def _on_requested(self, event) -> None:
        primitive = event.assoc.requestor.primitive
        calling = str(getattr(primitive, "calling_ae_title", "") or "").strip()
        address = str(event.assoc.requestor.address)
        if not self._allows(calling, address):
            with self._lock:
                self.refused.append((calling, address))
            event.assoc.acse.send_reject(_REJECTED_PERMANENT, _SOURCE_SERVICE_USER, _CALLING_AE_NOT_RECOGNISED)
            event.assoc.kill()  # as pynetdicom does after its rejections: the reject leaves before the socket closes
            if self.on_refused is not None:
                try:
                    self.on_refused(calling, address)
                except Exception:
                    logging.getLogger(__name__).exception("on_refused failed for %s at %s", calling, address)

    # ------------------------------------------------------------------ arrivals
    def _counted(self, handler):
        def handle(event) -> int:
            with self._lock:
                self._busy += 1
            try:
                return handler(event)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._idle.notify_all()

        return handle

    def _retrieving(self) -> bool:
        """While a retrieve of ours runs, arrivals are acknowledged on receipt (it checks they were written)."""
        with self._lock:
            return bool(self._routes)

    def _stored_from(self, calling: str) -> Callable[[StoredInstance], None]:
        return lambda item: self._stored(item, calling)

    def _stored(self, item: StoredInstance, calling: str = "") -> None:
        with self._lock:
            routes = list(self._routes)
        for match, tally in routes:
            if match(item.header):
                tally.stored(item)
        try:
            if self.on_instance is not None:
                self.on_instance(item)
            if self.on_received is not None:
                self.on_received(item, calling)
        except Exception:  # a listener's bug: the instance is stored all the same
            logging.getLogger(__name__).exception("a listener failed for %s", item.path)

    def _failed(self, sop_uid: str, reason: str) -> None:
        with self._lock:
            self.failed.append((sop_uid, reason))
            routes = list(self._routes)
        for _match, tally in routes:
            tally.fail(sop_uid, reason)

    @contextmanager
    def listening(self, match: Callable, tally: Tally) -> Iterator[None]:
        """While inside, instances for which ``match(header)`` is true are told to ``tally``; failures too."""
        route = (match, tally)
        with self._lock:
            self._routes.append(route)
        try:
            yield
        finally:
            with self._lock:
                self._routes.remove(route)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no instance is being received or written; False if one still was after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        if self._writer is not None:
            self._writer.drain()
        return True
