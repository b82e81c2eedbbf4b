"""What every association of radview's gets (viewer.net.association.fast_exchange_handlers), against a real Orthanc
that sends without TCP_NODELAY, as installed: TCP_NODELAY and quick polling on radview's side, pynetdicom's idle
logging handlers off (on again with its logger), and quick ACKs — without them each C-FIND waits for Linux's
delayed ACK (40 ms at least) before Orthanc's answer comes."""
from __future__ import annotations

import logging
import socket
import time

from pacs_cases import CALLING, CT_STUDY


def _study_find():
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = CT_STUDY
    ds.SOPClassesInStudy = ""
    return ds


def _timed_finds(assoc, node, find, n: int = 9) -> list[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        [found] = find(assoc, node, _study_find(), None)
        times.append(time.perf_counter() - t0)
        assert str(found.StudyInstanceUID) == CT_STUDY
    return times


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _bound(assoc, kind) -> list:
    """The handlers bound to a notification event of ``assoc``."""
    return [handler for handler, _args in assoc.get_handlers(kind)]


def test_c_finds_on_one_association_do_not_wait_for_delayed_acks(dimse_node):
    from pynetdicom import _handlers, evt

    from viewer.net.association import POLL_S, finish, quick_ack
    from viewer.net.dimse_query import _find, _find_association

    assoc = _find_association(dimse_node, CALLING)
    try:
        sock = assoc.dul.socket.socket
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert assoc.dul._run_loop_delay == POLL_S
        assert _handlers.standard_dimse_recv_handler not in _bound(assoc, evt.EVT_DIMSE_RECV)
        assert _handlers.standard_pdu_recv_handler not in _bound(assoc, evt.EVT_PDU_RECV)
        _find(assoc, dimse_node, _study_find(), None)  # warm: Orthanc's caches
        with_quick_acks = _timed_finds(assoc, dimse_node, _find)
        for kind in (evt.EVT_PDU_RECV, evt.EVT_PDU_SENT):
            assoc.unbind(kind, quick_ack)
        _timed_finds(assoc, dimse_node, _find)  # the socket's quick-ACK mode wears off
        without = _timed_finds(assoc, dimse_node, _find)
    finally:
        finish(assoc)
    # without quick ACKs each C-FIND waits for Linux's delayed ACK (>= 40 ms; measured 45-55 ms against 2-7 ms with
    # them): medians, and their difference, so that a busy machine (which slows both alike) does not decide
    fast, slow = _median(with_quick_acks), _median(without)
    assert slow - fast > 0.025, (f"C-FINDs took {[round(t * 1000) for t in with_quick_acks]} ms with quick ACKs, "
                                 f"{[round(t * 1000) for t in without]} ms without")


def test_only_the_asking_thread_takes_answers_off_the_queue(dimse_node):
    """pynetdicom's reactor thread took a fast C-FIND answer now and then (3 of 6811 C-FINDs, each then waiting for
    the DIMSE timeout): on radview's associations its non-blocking look at the queue sees nothing."""
    from viewer.net.association import finish
    from viewer.net.dimse_query import _find, _find_association

    assoc = _find_association(dimse_node, CALLING)
    try:
        assoc.dimse.msg_queue.put((7, "an answer"))
        time.sleep(0.05)  # the reactor polls every millisecond: it had 50 chances to take it
        assert assoc.dimse.get_msg(block=False) == (None, None)
        assert assoc.dimse.get_msg(block=True) == (7, "an answer")
        for _ in range(20):  # and requests on the association still get their answers
            [found] = _find(assoc, dimse_node, _study_find(), None)
            assert str(found.StudyInstanceUID) == CT_STUDY
    finally:
        finish(assoc)


def test_pynetdicom_logs_as_before_when_its_logger_is_on(dimse_node, caplog):
    from pynetdicom import _handlers, evt

    from viewer.net.association import finish
    from viewer.net.dimse_query import _find, _find_association

    logger = logging.getLogger("pynetdicom")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="pynetdicom"):
            assoc = _find_association(dimse_node, CALLING)
            try:
                assert _handlers.standard_dimse_recv_handler in _bound(assoc, evt.EVT_DIMSE_RECV)
                _find(assoc, dimse_node, _study_find(), None)
            finally:
                finish(assoc)
    finally:
        logger.setLevel(level)
    assert any("C-FIND RSP" in r.getMessage() or "Find SCP Response" in r.getMessage() for r in caplog.records)
