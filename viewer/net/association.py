"""Opening a DIMSE association with a node, every failure classified and told in words.

:func:`new_ae` makes a pynetdicom AE with radview's calling AE title and the node's timeouts;
:func:`open_association` requests the association and, when it is not established, raises
:class:`~viewer.net.errors.AssociationRejected` (with the node's reason: unknown calling AE title, …),
:class:`~viewer.net.errors.ConnectFailed` (nothing listening) or :class:`~viewer.net.errors.NetTimeout` (a
connection but no answer). pynetdicom does not say why a connection failed, so after a failure one plain TCP
connection is tried to tell "refused" from "no answer". :func:`abort_when` aborts an association as soon as a
``threading.Event`` is set (Cancel). :func:`check_status` turns a DIMSE response status into an error.

Every association of radview's, requested or accepted by its C-STORE SCP, gets :func:`fast_exchange_handlers`:
TCP_NODELAY, quick ACKs, a 0.2 ms poll in pynetdicom's network thread, pynetdicom's logging handlers off while its
logger is, and (requested ones) answers left to the thread that waits for them. A C-GET is a request/response
exchange per instance, so each of these waits was paid once per instance; measured on the 134-slice CT in
bench/pacs.py.
"""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from viewer.net.errors import (
    AssociationRejected,
    ConnectFailed,
    ContextsRejected,
    NetError,
    NetTimeout,
    RequestFailed,
)
from viewer.net.nodes import Node

#: pynetdicom's largest PDU we accept (0 would mean "no limit"; 1 MiB keeps memory per PDU bounded)
MAX_PDU = 1 << 20
#: how often an association's network thread polls (pynetdicom: 1 ms; see ``quick_turnaround``)
POLL_S = 0.0002
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def new_ae(calling_aet: str, node: Node):
    from pynetdicom import AE

    ae = AE(ae_title=calling_aet)
    ae.maximum_pdu_size = MAX_PDU
    ae.acse_timeout = node.timeout_s
    ae.dimse_timeout = node.timeout_s
    ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    return ae


def _tcp_diagnosis(node: Node, elapsed: float) -> NetError:
    """Why no association: try one plain TCP connection to tell refused / unreachable from no answer."""
    where = f"{node.host}:{node.port}"
    try:
        with socket.create_connection((node.host, node.port), timeout=min(node.timeout_s, 10.0)):
            pass
    except socket.gaierror as exc:
        return ConnectFailed(f"{node.label}: cannot resolve host {node.host!r} ({exc.strerror or exc})")
    except ConnectionRefusedError:
        return ConnectFailed(f"{node.label}: connection refused at {where} — is the DICOM service running and is the "
                             f"port right?")
    except socket.timeout:
        return NetTimeout(f"{node.label}: no answer from {where} within {node.timeout_s:g} s (host down or "
                          f"filtered by a firewall?)")
    except OSError as exc:
        return ConnectFailed(f"{node.label}: cannot connect to {where}: {exc.strerror or exc}")
    if elapsed < 0.8 * node.timeout_s:
        return AssociationRejected(f"{node.label}: {where} closed the connection without answering the DICOM "
                                   f"association request (is it a DICOM port?)")
    return NetTimeout(f"{node.label}: {where} accepted the connection but did not answer the DICOM association "
                      f"request within {node.timeout_s:g} s (is it a DICOM port?)")


def no_delay(event) -> None:
    """``EVT_CONN_OPEN`` handler: TCP_NODELAY on the association's socket. DIMSE messages go out as several small
    PDUs; with Nagle's algorithm on, each exchange waits for the peer's delayed ACK (40 ms on Linux): a C-FIND took
    90 ms instead of 5, and dcmtk's tools slow down the same way without ``TCP_NODELAY=1``."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def quick_ack(event) -> None:
    """``EVT_PDU_RECV`` and ``EVT_PDU_SENT`` handler: acknowledge what arrives at once (Linux ``TCP_QUICKACK``).
    The kernel goes back to delayed ACKs by itself — sending soon after receiving is what it takes for a sign of a
    request/response exchange — so it is set again after every PDU received or sent. A peer that sends without
    ``TCP_NODELAY`` — Orthanc as installed does, through DCMTK — holds its next small segment until our ACK, which
    Linux delays by 40 ms or more: a C-FIND took 45-55 ms against Orthanc instead of 2-7 (so every retrieve paid it
    once, asking for the study's SOP classes), and an instance of a C-GET now and then 40 ms more."""
    sock = getattr(getattr(event.assoc.dul, "socket", None), "socket", None)
    if sock is not None and _QUICKACK is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        except OSError:
            pass


def quick_turnaround(event) -> None:
    """``EVT_CONN_OPEN`` handler: the association's network thread looks for work every ``POLL_S`` instead of
    pynetdicom's 1 ms. It polls (sleeps, then checks the socket and its queue): every response radview sends and
    every message the peer sends waits for the end of its sleep. A C-GET answers each instance before the node
    sends the next, so the poll is on every instance's path (134 × 2 waits of up to 1 ms for the CT series); at
    0.2 ms it cost the idle association 5 % more of a core (measured: 10 % instead of 5 %), only while it is open."""
    dul = getattr(event.assoc, "dul", None)
    if dul is not None and hasattr(dul, "_run_loop_delay"):  # pynetdicom's tunable, private: left alone if it goes
        dul._run_loop_delay = POLL_S


def quiet(event) -> None:
    """``EVT_CONN_OPEN`` handler: unbind pynetdicom's standard logging handlers from the association unless its
    logger is on (INFO or more). They run for every PDU and DIMSE message whether or not anything is logged, and
    the one for a received C-STORE copies the whole data set to see that it is not empty: 7 % of a C-GET's time
    (134 CT slices: 566 instead of 611 ms, 33 ms less CPU). Turning the ``pynetdicom`` logger on brings them back
    for the associations opened after."""
    import logging

    if logging.getLogger("pynetdicom").isEnabledFor(logging.INFO):
        return
    from pynetdicom import _handlers, evt

    for kind, handler in ((evt.EVT_DIMSE_RECV, _handlers.standard_dimse_recv_handler),
                          (evt.EVT_DIMSE_SENT, _handlers.standard_dimse_sent_handler),
                          (evt.EVT_PDU_RECV, _handlers.standard_pdu_recv_handler),
                          (evt.EVT_PDU_SENT, _handlers.standard_pdu_sent_handler)):
        try:
            event.assoc.unbind(kind, handler)
        except (AttributeError, ValueError, KeyError):  # not bound (another pynetdicom): nothing to do
            pass


def responses_to_the_asker(event) -> None:
    """``EVT_CONN_OPEN`` handler for the associations radview requests: the association's own thread never takes a
    message off the DIMSE queue — every message on one of them answers a request of ours (or is a C-STORE of our
    C-GET) and belongs to the thread waiting for it. pynetdicom pauses that thread during a request, but the pause
    has a race (its ``_is_paused`` flag can be stale): when the answer comes fast it takes it first, logs "Received
    unexpected C-FIND service message" and the request waits for its timeout (pynetdicom issue #875). Answers come
    within 2 ms now that nothing waits for delayed ACKs: a test with two C-FINDs on one association lost the race
    once, a loop of C-FINDs 3 times in 6811 (none of 7480 with this handler)."""
    assoc = event.assoc
    dimse = getattr(assoc, "dimse", None)
    if not getattr(assoc, "is_requestor", False) or dimse is None:
        return
    waiting_get = dimse.get_msg

    def get_msg(block: bool = False):
        if not block:  # only the association's reactor asks without waiting
            return None, None
        return waiting_get(block=True)

    dimse.get_msg = get_msg


def fast_exchange_handlers() -> list:
    """The handlers every association of radview's gets, requested or accepted: TCP_NODELAY, quick ACKs, quick
    polling, no idle logging handlers."""
    from pynetdicom import evt

    return [(evt.EVT_CONN_OPEN, no_delay), (evt.EVT_CONN_OPEN, quick_turnaround), (evt.EVT_CONN_OPEN, quiet),
            (evt.EVT_CONN_OPEN, responses_to_the_asker), (evt.EVT_PDU_RECV, quick_ack), (evt.EVT_PDU_SENT, quick_ack)]


def open_association(ae, node: Node, **kwargs):
    """An established association with ``node`` (kwargs go to ``AE.associate``), or a classified NetError."""
    handlers = list(kwargs.pop("evt_handlers", None) or []) + fast_exchange_handlers()
    t0 = time.monotonic()
    assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, max_pdu=MAX_PDU, evt_handlers=handlers,
                         **kwargs)
    if assoc.is_established:
        return assoc
    if assoc.rejected_contexts and not assoc.accepted_contexts:  # pynetdicom aborts: nothing could be exchanged
        names = sorted({_sop_name(cx.abstract_syntax) for cx in assoc.rejected_contexts})
        raise ContextsRejected(f"{node.label} accepts none of what was proposed: {', '.join(names[:5])}"
                               + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
    if assoc.is_rejected:
        p = assoc.acceptor.primitive
        reason = getattr(p, "reason_str", "") if p is not None else ""
        result = getattr(p, "result_str", "") if p is not None else ""
        hint = ""
        if "Calling AE" in reason:
            hint = f" — add {ae.ae_title} at this machine's address to the node's known modalities"
        elif "Called AE" in reason:
            hint = f" — check the node's AE title ({node.ae_title})"
        raise AssociationRejected(f"{node.label} rejected the association ({result}: {reason}){hint}")
    raise _tcp_diagnosis(node, time.monotonic() - t0)


def _sop_name(uid) -> str:
    name = getattr(uid, "name", "") or ""
    return f"{name} ({uid})" if name and name != str(uid) else str(uid)


def no_context(node: Node, what: str) -> AssociationRejected:
    return AssociationRejected(f"{node.label} accepted the association but not {what}")


@contextmanager
def abort_when(cancel: threading.Event | None, assoc, ask: Callable[[], None] | None = None,
               grace_s: float = 3.0) -> Iterator[None]:
    """While inside, a set ``cancel`` stops the operation on ``assoc``: ``ask()`` first (a C-CANCEL, which lets the
    node end it cleanly), then, after ``grace_s`` without an end, an abort. A receive blocked in pynetdicom returns
    at once (it would otherwise wait for the DIMSE timeout)."""
    if cancel is None:
        yield
        return
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if not cancel.wait(0.05):
                continue
            if ask is not None and assoc.is_established:
                try:
                    ask()
                except (RuntimeError, ValueError, AttributeError):  # association already gone
                    pass
                if done.wait(grace_s):
                    return
            if not done.is_set():
                if assoc.is_established:
                    assoc.abort()
                assoc.dimse.msg_queue.put((None, None))  # wakes the waiting receive: "no response"
            return

    watcher = threading.Thread(target=watch, name="radview-net-cancel", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def raise_if_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        from radview_base.cancel import Cancelled

        raise Cancelled()


def finish(assoc, timeout: float = 10.0, wait: bool = True) -> None:
    """Release ``assoc`` if still up, then wait for its thread (handlers included) to end. ``wait=False``: all that
    in the background, once everything asked has been answered (the release costs a round trip, 10 ms or more)."""
    if not wait:
        threading.Thread(target=finish, args=(assoc, timeout), name="radview-net-release", daemon=True).start()
        return
    if assoc.is_established:
        assoc.release()
    if assoc.is_alive():
        assoc.join(timeout)


def check_status(status, node: Node, what: str) -> int:
    """The status value of a DIMSE response, or a NetError when there was none (timeout, abort)."""
    if status is None or "Status" not in status:
        raise NetTimeout(f"{node.label}: no response to {what} within {node.timeout_s:g} s, or the association "
                         f"was aborted")
    return int(status.Status)


def failure(status, node: Node, what: str) -> RequestFailed:
    code = int(status.Status)
    comment = str(status.get("ErrorComment", "") or "").strip()
    from pynetdicom.status import code_to_category

    return RequestFailed(f"{node.label}: {what} failed with status 0x{code:04X} ({code_to_category(code)})"
                         + (f": {comment}" if comment else ""))
