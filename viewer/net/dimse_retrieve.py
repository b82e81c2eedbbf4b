"""Retrieve by C-GET (the instances come back on the same association) and by C-MOVE (the node sends them to
radview's C-STORE SCP, ``viewer.net.store_scp``), resuming where an earlier try stopped.

A destination that holds nothing of the study/series gets all of it with one request, at once (the node is asked
only for its SOP classes, for the presentation contexts). A destination that holds some of it — a retry — compares
what the node lists (``dimse_query.list_instances``) with what it has and asks only for the missing instances (an
image-level request naming their SOP Instance UIDs, per series): no instance is fetched or written twice. The final
response's status and failed sub-operations, and the instances still missing at the end (the node is asked for its
list whenever a retrieve did not end cleanly), are in the :class:`~viewer.net.results.RetrieveResult`. Cancel sends
a C-CANCEL (an abort if the node does not stop) and raises :class:`~viewer.net.results.RetrieveCancelled` with what
had arrived.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from viewer.net.association import abort_when, check_status, finish, new_ae, no_context, open_association
from viewer.net.errors import NetError, RequestFailed
from viewer.net.nodes import Node
from viewer.net.receive import InstanceWriter, OnInstance, Tally, store_handler
from viewer.net.records import InstanceRef
from viewer.net.results import RetrieveCancelled, RetrieveResult
from viewer.net.sinks import InstanceSink

_PENDING = (0xFF00, 0xFF01)
UIDS_PER_REQUEST = 100
Progress = Callable[[int, int, str], None]


def _transfer_syntaxes():
    from pydicom import uid

    plain = [uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian]
    compressed = [uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLosslessSV1, uid.JPEGLSLossless,
                  uid.JPEG2000Lossless, uid.JPEG2000, uid.RLELossless]
    return plain, compressed


def get_contexts(sop_classes: Sequence[str]):
    """Presentation contexts and SCP role items for C-GET: the Study Root GET model and a storage context per SOP
    class (uncompressed), plus one per compressed transfer syntax while they fit, so the node can send compressed
    instances as they are stored."""
    from pynetdicom import StoragePresentationContexts, build_context, build_role
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    plain, compressed = _transfer_syntaxes()
    classes = list(dict.fromkeys(c for c in sop_classes if c))
    if not classes:  # the node did not say: every common storage class, uncompressed
        classes = [str(cx.abstract_syntax) for cx in StoragePresentationContexts][:126]
    contexts = [build_context(GET)] + [build_context(c, plain) for c in classes]
    if len(classes) * (1 + len(compressed)) <= 126:
        contexts += [build_context(c, ts) for c in classes for ts in compressed]
    roles = [build_role(c, scp_role=True) for c in classes]
    return contexts, roles


def _identifiers(study_uid: str, series_uid: str, missing: Sequence[InstanceRef], whole: bool):
    from pydicom.dataset import Dataset

    if whole:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        ds.StudyInstanceUID = study_uid
        if series_uid:
            ds.SeriesInstanceUID = series_uid
        return [ds]
    by_series: dict[str, list[str]] = {}
    for r in missing:
        by_series.setdefault(r.series_uid, []).append(r.sop_uid)
    out = []
    for series, uids in by_series.items():
        for i in range(0, len(uids), UIDS_PER_REQUEST):
            ds = Dataset()
            ds.QueryRetrieveLevel = "IMAGE"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series
            ds.SOPInstanceUID = uids[i:i + UIDS_PER_REQUEST]
            out.append(ds)
    return out


def _final(status, ident, node: Node, what: str, tally: Tally, cancel: threading.Event | None) -> None:
    """Note the final C-GET/C-MOVE response: its status and count, and the failures it reports (not the end of one
    we cancelled)."""
    code = int(status.Status)
    tally.final(code, status.get("NumberOfCompletedSuboperations", None))
    if code == 0 or (code == 0xFE00 and cancel is not None and cancel.is_set()):
        return
    value = ident.get("FailedSOPInstanceUIDList", None) if ident is not None else None
    failed_uids = [] if not value else [str(v) for v in ([value] if isinstance(value, str) else value) if str(v)]
    n_failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
    from pynetdicom.status import code_to_category

    reason = f"{what} ended with status 0x{code:04X} ({code_to_category(code)})"
    comment = str(status.get("ErrorComment", "") or "").strip()
    if comment:
        reason += f": {comment}"
    if failed_uids:
        for uid in failed_uids:
            tally.fail(uid, reason)
    else:
        tally.fail("", reason + (f"; {n_failed} sub-operation(s) failed" if n_failed else ""))


def _total(status, fallback: int) -> int:
    """The number of sub-operations a pending response announces (remaining + done), else ``fallback``."""
    keys = ("NumberOfRemainingSuboperations", "NumberOfCompletedSuboperations", "NumberOfFailedSuboperations",
            "NumberOfWarningSuboperations")
    counts = [status.get(k, None) for k in keys]
    return sum(int(c) for c in counts if c is not None) if counts[0] is not None else fallback


def _run(assoc, requests, send, model: str, node: Node, what: str, tally: Tally, total: int,
         progress: Progress | None, cancel: threading.Event | None) -> None:
    """Send each request, follow its responses, note failures; a lost association is a failure, not silence.
    Cancel sends a C-CANCEL for the request in progress (then aborts if the node does not stop)."""
    msg_id = [0]

    def ask() -> None:
        assoc.send_c_cancel(msg_id[0], query_model=model)

    with abort_when(cancel, assoc, ask):
        for ds in requests:
            msg_id[0] += 1
            try:
                for status, ident in send(ds, msg_id[0]):
                    code = check_status(status, node, what)
                    if code in _PENDING:
                        if progress is not None:
                            progress(tally.new_count, total or _total(status, 0), "")
                        continue
                    _final(status, ident, node, what, tally, cancel)
                    break
            except NetError as exc:
                if cancel is not None and cancel.is_set():
                    return
                tally.fail("", str(exc))
                return
            if cancel is not None and cancel.is_set():
                return


@dataclass(frozen=True)
class _Plan:
    expected: tuple[InstanceRef, ...] | None  # None: the destination had nothing, the node was not asked
    present: frozenset[str]
    missing: tuple[InstanceRef, ...]
    sop_classes: tuple[str, ...]

    @property
    def whole(self) -> bool:
        return not self.present

    @property
    def done(self) -> bool:
        return self.expected is not None and not self.missing


def _plan(node: Node, calling_aet: str, study_uid: str, series_uid: str, sink: InstanceSink,
          cancel: threading.Event | None) -> _Plan:
    """What to ask for. A destination that holds none of it gets the whole study/series at once (the node's SOP
    classes for the presentation contexts); otherwise the node lists its instances and only the missing are asked."""
    from viewer.net.dimse_query import list_instances, sop_classes

    if sink.holds(study_uid, series_uid):
        try:
            expected = tuple(list_instances(node, calling_aet, study_uid, series_uid, cancel))
        except RequestFailed:  # no instance-level C-FIND here: ask for all, what is there is not written again
            expected = None
        if expected is not None:
            present = frozenset(sink.present(expected))
            missing = tuple(r for r in expected if r.sop_uid not in present)
            classes = tuple(dict.fromkeys(r.sop_class_uid for r in missing if r.sop_class_uid))
            return _Plan(expected, present, missing, classes or tuple(sop_classes(node, calling_aet, study_uid)))
    return _Plan(None, frozenset(), (), tuple(sop_classes(node, calling_aet, study_uid)))


def _result(method: str, node: Node, calling_aet: str, study_uid: str, series_uid: str, sink: InstanceSink,
            plan: _Plan, tally: Tally, cancel: threading.Event | None) -> RetrieveResult:
    """The result; where the node was not asked beforehand and the retrieve did not end cleanly (a failure, a
    cancel), it is asked now, so that what is missing is named."""
    from viewer.net.dimse_query import list_instances

    expected = plan.expected
    n_expected = None if expected is None else len(expected)
    if (expected is None and tally.clean and tally.completed == tally.count
            and not (cancel is not None and cancel.is_set())):
        n_expected = tally.completed
    elif expected is None:
        try:
            expected = tuple(list_instances(node, calling_aet, study_uid, series_uid))
            n_expected = len(expected)
        except NetError as exc:
            tally.fail("", f"cannot list what the node holds to tell what is missing: {exc}")
    missing: tuple[str, ...] = ()
    if expected is not None:
        now = sink.present(expected)
        missing = tuple(r.sop_uid for r in expected if r.sop_uid not in now)
    return RetrieveResult(method=method, node=node.label, study_uid=study_uid, series_uid=series_uid,
                          destination=sink.location(study_uid, series_uid), expected=n_expected,
                          arrived=tuple(dict.fromkeys(tally.arrived)), already_present=tuple(sorted(plan.present)),
                          failed=tuple(tally.failed), missing=missing, seconds=time.perf_counter() - tally.started,
                          first_instance_s=tally.first_s)


def c_get(node: Node, calling_aet: str, study_uid: str, series_uid: str, sink: InstanceSink,
          progress: Progress | None = None, cancel: threading.Event | None = None,
          on_instance: OnInstance | None = None) -> RetrieveResult:
    """Retrieve the study (or series) into ``sink`` by C-GET, fetching only what the sink does not hold."""
    from pynetdicom import evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    tally = Tally(on_instance)
    plan = _plan(node, calling_aet, study_uid, series_uid, sink, cancel)
    if plan.done:
        return _result("get", node, calling_aet, study_uid, series_uid, sink, plan, tally, cancel)
    contexts, roles = get_contexts(plan.sop_classes)
    ae = new_ae(calling_aet, node)
    with InstanceWriter(sink) as writer:
        handler = store_handler(writer, tally.stored, tally.fail)
        assoc = open_association(ae, node, contexts=contexts, ext_neg=roles,
                                 evt_handlers=[(evt.EVT_C_STORE, handler)])
        try:
            if not any(cx.abstract_syntax == GET for cx in assoc.accepted_contexts):
                raise no_context(node, "Study Root C-GET")
            requests = _identifiers(study_uid, series_uid, plan.missing, plan.whole)
            _run(assoc, requests, lambda ds, msg_id: assoc.send_c_get(ds, GET, msg_id=msg_id), GET, node, "C-GET",
                 tally, len(plan.missing), progress, cancel)
        finally:
            # the handlers ran in this thread: every instance received is with the writer, which drains below
            finish(assoc, wait=False)
    result = _result("get", node, calling_aet, study_uid, series_uid, sink, plan, tally, cancel)
    if cancel is not None and cancel.is_set():
        raise RetrieveCancelled(result)
    return result


def c_move(node: Node, calling_aet: str, study_uid: str, series_uid: str, scp, progress: Progress | None = None,
           cancel: threading.Event | None = None, on_instance: OnInstance | None = None) -> RetrieveResult:
    """Retrieve by C-MOVE to ``scp`` (a started :class:`~viewer.net.store_scp.StoreSCP`, its AE title the move
    destination), fetching only what its sink does not hold; what arrives is written into that sink."""
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

    sink = scp.sink
    tally = Tally(on_instance)
    plan = _plan(node, calling_aet, study_uid, series_uid, sink, cancel)
    if plan.done:
        return _result("move", node, calling_aet, study_uid, series_uid, sink, plan, tally, cancel)
    wanted = {r.sop_uid for r in plan.missing}

    def mine(header) -> bool:
        if wanted:
            return header.sop_uid in wanted
        return header.study_uid == study_uid and (not series_uid or header.series_uid == series_uid)

    ae = new_ae(calling_aet, node)
    ae.add_requested_context(MOVE)
    with scp.listening(mine, tally):
        assoc = open_association(ae, node)
        try:
            if not assoc.accepted_contexts:
                raise no_context(node, "Study Root C-MOVE")
            requests = _identifiers(study_uid, series_uid, plan.missing, plan.whole)
            _run(assoc, requests, lambda ds, msg_id: assoc.send_c_move(ds, scp.ae_title, MOVE, msg_id=msg_id), MOVE,
                 node, "C-MOVE", tally, len(plan.missing), progress, cancel)
        finally:
            finish(assoc)
        scp.wait_idle()  # instances received but still being written when the move ended
    _explain_move_failures(tally, scp, node)
    result = _result("move", node, calling_aet, study_uid, series_uid, sink, plan, tally, cancel)
    if cancel is not None and cancel.is_set():
        raise RetrieveCancelled(result)
    return result


def _explain_move_failures(tally: Tally, scp, node: Node) -> None:
    """A refused move destination gets the fix in words (the node does not know where radview listens)."""
    for i, (uid, reason) in enumerate(tally.failed):
        if "0xA801" in reason:
            tally.failed[i] = (uid, f"{reason} — {node.label} does not know the move destination {scp.ae_title}: "
                                    f"add {scp.ae_title} at {scp.host}:{scp.port} to its DICOM modalities")
