"""DICOMweb with dicomweb-client: QIDO-RS search, WADO-RS retrieve (streamed, instance by instance, with progress)
and STOW-RS send.

The same shapes as DIMSE: :func:`search` takes :class:`~viewer.net.records.QueryCriteria` and returns study or
series records; :func:`wado_retrieve` writes into a sink and returns a :class:`~viewer.net.results.RetrieveResult`,
resuming without writing anything twice (a series streams whole, the instances already at the destination skipped;
when only a few are missing, just those are fetched); :func:`stow` sends files and lists each one the server failed
with its reason. Instances are asked for in the transfer syntax the server holds them in (``*``): nothing is
transcoded on the way. dicomweb-client's own retries are off: a failure comes back at once, within the timeout.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

from viewer.net.errors import NetError, RequestFailed
from viewer.net.instance_header import HeaderError, header_of_dataset
from viewer.net.nodes import Node
from viewer.net.receive import InstanceWriter, OnInstance, Tally
from viewer.net.records import InstanceRef, QueryCriteria, SeriesRecord, StudyRecord
from viewer.net.results import RetrieveCancelled, RetrieveResult, SendResult
from viewer.net.sinks import InstanceSink
from viewer.net.web_session import make_client, web_errors

AS_STORED = (("application/dicom", "*"),)
STOW_BATCH = 16
PER_INSTANCE_MAX, PER_INSTANCE_FRACTION = 8, 0.1  # when a resumed series is fetched instance by instance
_STUDY_FIELDS = ["PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber",
                 "StudyDescription", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                 "NumberOfStudyRelatedInstances"]
_SERIES_FIELDS = ["Modality", "SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances"]


def _datasets(objects: Iterable[dict]) -> list:
    from pydicom.dataset import Dataset

    return [Dataset.from_json(o) for o in objects]


def ping(node: Node) -> float:
    """A one-result QIDO-RS study search (what "Test" and ``pacs echo`` do for DICOMweb); seconds taken."""
    t0 = time.perf_counter()
    with web_errors(node, "QIDO-RS search"):
        make_client(node).search_for_studies(limit=1)
    return time.perf_counter() - t0


def _study_filters(c: QueryCriteria, series_level: bool) -> dict:
    f = {"PatientName": c.patient_name, "PatientID": c.patient_id, "StudyDate": c.study_date,
         "AccessionNumber": c.accession, "StudyInstanceUID": c.study_uid}
    if not series_level:
        f.update({"ModalitiesInStudy": c.modality, "StudyDescription": c.description})
    return {k: v for k, v in f.items() if v}


def search(node: Node, criteria: QueryCriteria, cancel: threading.Event | None = None
           ) -> list[StudyRecord] | list[SeriesRecord]:
    """Studies or series matching ``criteria`` (series: the matching studies' series, filtered by modality and
    description)."""
    from radview_base.cancel import Cancelled

    series_level = criteria.level == "series"
    client = make_client(node)
    with web_errors(node, "QIDO-RS search"):
        found = client.search_for_studies(search_filters=_study_filters(criteria, series_level),
                                          fields=_STUDY_FIELDS, limit=None if series_level else criteria.limit or None,
                                          get_remaining=series_level or not criteria.limit)
        studies = [StudyRecord.from_dataset(ds) for ds in _datasets(found)]
        if not series_level:
            return studies[:criteria.limit] if criteria.limit else studies
        if not studies and criteria.study_uid:
            studies = [StudyRecord(study_uid=criteria.study_uid)]
        series: list[SeriesRecord] = []
        for study in studies:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            filters = {k: v for k, v in (("Modality", criteria.modality), ("SeriesDescription", criteria.description),
                                         ("SeriesInstanceUID", criteria.series_uid)) if v}
            rows = client.search_for_series(study.study_uid, search_filters=filters, fields=_SERIES_FIELDS,
                                            get_remaining=True)
            series += [SeriesRecord.from_dataset(ds, study) for ds in _datasets(rows)]
        return series[:criteria.limit] if criteria.limit else series


def list_instances(node: Node, study_uid: str, series_uid: str = "") -> list[InstanceRef]:
    """Every instance of the study (or series) the server lists, with its SOP class."""
    client = make_client(node)
    with web_errors(node, "QIDO-RS instance search"):
        rows = client.search_for_instances(study_uid, series_uid or None, fields=["SOPClassUID", "SeriesInstanceUID"],
                                           get_remaining=True)
    refs = []
    for ds in _datasets(rows):
        refs.append(InstanceRef(study_uid, str(ds.get("SeriesInstanceUID", "") or series_uid),
                                str(ds.get("SOPInstanceUID", "")), str(ds.get("SOPClassUID", "") or "")))
    return [r for r in refs if r.sop_uid and r.series_uid]


def _writer(ds):
    def write(tmp: str) -> None:
        import pydicom

        pydicom.dcmwrite(tmp, ds, enforce_file_format=True)

    return write


def count_instances(node: Node, study_uid: str, series_uid: str = "") -> int | None:
    """How many instances the server says the study (or series) has (QIDO-RS), None when it does not say."""
    client = make_client(node)
    with web_errors(node, "QIDO-RS search"):
        if series_uid:
            rows = client.search_for_series(study_uid, search_filters={"SeriesInstanceUID": series_uid},
                                            fields=["NumberOfSeriesRelatedInstances"])
            key = "NumberOfSeriesRelatedInstances"
        else:
            rows = client.search_for_studies(search_filters={"StudyInstanceUID": study_uid},
                                             fields=["NumberOfStudyRelatedInstances"])
            key = "NumberOfStudyRelatedInstances"
    for ds in _datasets(rows):
        value = ds.get(key, None)
        if value not in (None, ""):
            return int(value)
    return None


def wado_retrieve(node: Node, study_uid: str, series_uid: str, sink: InstanceSink, progress: Callable | None = None,
                  cancel: threading.Event | None = None, on_instance: OnInstance | None = None) -> RetrieveResult:
    """WADO-RS into ``sink``. A destination holding nothing of it gets the study/series as one multipart stream,
    written instance by instance as parts arrive (the server's instance count, asked meanwhile, checks it all
    came; when it did not, the server's list names what is missing). A destination holding some of it gets only
    the rest: each series streamed with the instances already there skipped, or, when only a few are missing, just
    those one by one."""
    tally = Tally(on_instance)
    client = make_client(node)
    total = [0]

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    def stored(item) -> None:
        tally.stored(item)
        if progress is not None:
            progress(tally.new_count, total[0], "")

    def take(ds) -> None:  # written on the writer threads while the next part arrives
        try:
            header = header_of_dataset(ds)
        except HeaderError as exc:
            tally.fail("", f"unreadable part: {exc}")
            return
        writer.submit_dataset(header, _writer(ds), stored, tally.fail)

    def stream(items) -> None:
        try:
            for ds in items:
                take(ds)
                if cancelled():
                    break
        finally:
            items.close()  # closes the response: a cancel stops the transfer

    expected: list[InstanceRef] | None = None
    present: set[str] = set()
    counted: list = []
    counter = None
    writer = InstanceWriter(sink)
    try:
        if sink.holds(study_uid, series_uid):
            expected = list_instances(node, study_uid, series_uid)
            present = sink.present(expected)
            missing = [r for r in expected if r.sop_uid not in present]
            total[0] = len(missing)
            by_series: dict[str, list[InstanceRef]] = {}
            for r in missing:
                by_series.setdefault(r.series_uid, []).append(r)
            for series, refs in by_series.items():
                if cancelled():
                    break
                in_series = sum(1 for p in expected if p.series_uid == series)
                with web_errors(node, f"WADO-RS retrieve of series {series}"):
                    if len(refs) > max(PER_INSTANCE_MAX, PER_INSTANCE_FRACTION * in_series):
                        stream(client.iter_series(study_uid, series, media_types=AS_STORED))
                    else:
                        for r in refs:
                            if cancelled():
                                break
                            take(client.retrieve_instance(study_uid, series, r.sop_uid, media_types=AS_STORED))
        else:
            def count() -> None:
                try:
                    counted.append(count_instances(node, study_uid, series_uid))
                    total[0] = counted[0] or 0
                except NetError as exc:
                    counted.append(exc)

            counter = threading.Thread(target=count, name="radview-qido-count", daemon=True)
            counter.start()
            what = f"WADO-RS retrieve of {'series ' + series_uid if series_uid else 'study ' + study_uid}"
            with web_errors(node, what):
                if series_uid:
                    stream(client.iter_series(study_uid, series_uid, media_types=AS_STORED))
                else:
                    stream(client.iter_study(study_uid, media_types=AS_STORED))
    except NetError as exc:
        tally.fail("", str(exc))
    finally:
        writer.close()
    if counter is not None:
        counter.join()
    n_expected = None if expected is None else len(expected)
    if expected is None:
        n = counted[0] if counted and not isinstance(counted[0], NetError) else None
        if n is not None and n == tally.count and not tally.failed and not cancelled():
            n_expected = n
        else:  # it did not end cleanly: the server's list names what is missing
            try:
                expected = list_instances(node, study_uid, series_uid)
                n_expected = len(expected)
            except NetError as exc:
                tally.fail("", f"cannot list what the server holds to tell what is missing: {exc}")
    now = sink.present(expected) if expected is not None else set()
    result = RetrieveResult(method="wado", node=node.label, study_uid=study_uid, series_uid=series_uid,
                            destination=sink.location(study_uid, series_uid), expected=n_expected,
                            arrived=tuple(dict.fromkeys(tally.arrived)), already_present=tuple(sorted(present)),
                            failed=tuple(tally.failed),
                            missing=tuple(r.sop_uid for r in expected or () if r.sop_uid not in now),
                            seconds=time.perf_counter() - tally.started, first_instance_s=tally.first_s)
    if cancelled():
        raise RetrieveCancelled(result)
    return result


def _stow_failures(response, by_uid: dict[str, str]) -> list[tuple[str, str]]:
    failed = []
    for item in (response.get("FailedSOPSequence", None) or []) if response is not None else []:
        uid = str(item.get("ReferencedSOPInstanceUID", ""))
        reason = item.get("FailureReason", None)
        failed.append((by_uid.get(uid, uid), f"refused by the server (failure reason {reason})"))
    return failed


def stow(node: Node, paths: Iterable[str], progress: Callable | None = None,
         cancel: threading.Event | None = None) -> SendResult:
    """STOW-RS the DICOM files at ``paths`` (files or folders), a few per request."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from radview_base.cancel import Cancelled
    from viewer.net.dimse_send import dicom_files

    t0 = time.perf_counter()
    files = dicom_files(paths)
    client = make_client(node)
    sent: list[str] = []
    failed: list[tuple[str, str]] = []
    for i in range(0, len(files), STOW_BATCH):
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        batch, datasets, by_uid = [], [], {}
        for f in files[i:i + STOW_BATCH]:
            try:
                ds = pydicom.dcmread(f)
            except (InvalidDicomError, OSError, ValueError) as exc:
                failed.append((f, f"not a readable DICOM file ({exc})"))
                continue
            batch.append(f)
            datasets.append(ds)
            by_uid[str(ds.get("SOPInstanceUID", ""))] = f
        if not datasets:
            continue
        try:
            with web_errors(node, "STOW-RS"):
                response = client.store_instances(datasets)
        except RequestFailed as exc:
            failed += [(f, str(exc)) for f in batch]
            continue
        bad = _stow_failures(response, by_uid)
        failed += bad
        bad_paths = {p for p, _ in bad}
        sent += [f for f in batch if f not in bad_paths]
        if progress is not None:
            progress(min(i + STOW_BATCH, len(files)), len(files), "")
    return SendResult(node=node.label, sent=tuple(sent), failed=tuple(failed), seconds=time.perf_counter() - t0)
