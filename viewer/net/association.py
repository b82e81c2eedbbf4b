"""Opening a DIMSE association with a node, every failure classified and told in words.

:func:`new_ae` makes a pynetdicom AE with radview's calling AE title and the node's timeouts;
:func:`open_association` requests the association and, when it is not established, raises
:class:`~viewer.net.errors.AssociationRejected` (with the node's reason: unknown calling AE title, …),
:class:`~viewer.net.errors.ConnectFailed` (nothing listening) or :class:`~viewer.net.errors.NetTimeout` (a
connection but no answer). pynetdicom does not say why a connection failed, so after a failure one plain TCP
connection is tried to tell "refused" from "no answer". :func:`abort_when` aborts an association as soon as a
``threading.Event`` is set (Cancel). :func:`check_status` turns a DIMSE response status into an error.
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


def open_association(ae, node: Node, **kwargs):
    """An established association with ``node`` (kwargs go to ``AE.associate``), or a classified NetError."""
    from pynetdicom import evt

    handlers = list(kwargs.pop("evt_handlers", None) or []) + [(evt.EVT_CONN_OPEN, no_delay)]
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
