"""C-ECHO and C-FIND (Study Root) with pynetdicom: studies, the series of a study, the instances of a series.

Series-level queries without a study UID first find the matching studies, then their series (the hierarchical
query every node supports). ``list_instances`` is the instance-level query a resumed retrieve compares with
what is already at the destination.
"""
from __future__ import annotations

import threading
import time

from viewer.net.association import (
    abort_when,
    check_status,
    failure,
    finish,
    new_ae,
    no_context,
    open_association,
    raise_if_cancelled,
)
from viewer.net.errors import NetError, RequestFailed
from viewer.net.nodes import Node
from viewer.net.records import InstanceRef, QueryCriteria, SeriesRecord, StudyRecord

_PENDING = (0xFF00, 0xFF01)
_STUDY_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "AccessionNumber",
               "StudyDescription", "ModalitiesInStudy", "StudyInstanceUID", "NumberOfStudyRelatedSeries",
               "NumberOfStudyRelatedInstances")
_SERIES_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesDescription", "SeriesNumber",
                "NumberOfSeriesRelatedInstances")


def echo(node: Node, calling_aet: str) -> float:
    """C-ECHO ``node``; the round trip in seconds, or a NetError."""
    from pynetdicom.sop_class import Verification

    ae = new_ae(calling_aet, node)
    ae.add_requested_context(Verification)
    t0 = time.perf_counter()
    assoc = open_association(ae, node)
    try:
        status = assoc.send_c_echo()
        code = check_status(status, node, "C-ECHO")
        if code != 0:
            raise failure(status, node, "C-ECHO")
    finally:
        finish(assoc)
    return time.perf_counter() - t0


def study_identifier(c: QueryCriteria):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for k in _STUDY_KEYS:
        setattr(ds, k, "")
    ds.PatientName = c.patient_name
    ds.PatientID = c.patient_id
    ds.StudyDate = c.study_date
    ds.AccessionNumber = c.accession
    ds.StudyDescription = c.description
    ds.StudyInstanceUID = c.study_uid
    ds.ModalitiesInStudy = c.modality
    return ds


def series_identifier(c: QueryCriteria, study_uid: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"
    for k in _SERIES_KEYS:
        setattr(ds, k, "")
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = c.series_uid
    ds.Modality = c.modality
    ds.SeriesDescription = c.description if c.level == "series" else ""
    return ds


def _find(assoc, node: Node, identifier, cancel: threading.Event | None, limit: int = 0) -> list:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    out = []
    msg_id = 1
    try:
        for status, ident in assoc.send_c_find(identifier, FIND, msg_id=msg_id):
            code = check_status(status, node, "C-FIND")
            if code in _PENDING:
                if ident is not None:
                    out.append(ident)
                if limit and len(out) == limit:
                    assoc.send_c_cancel(msg_id, query_model=FIND)
                continue
            if code in (0, 0xFE00):  # done, or cancelled by our limit
                break
            raise failure(status, node, "C-FIND")
    except NetError:
        raise_if_cancelled(cancel)
        raise
    raise_if_cancelled(cancel)
    return out[:limit] if limit else out


def _find_association(node: Node, calling_aet: str):
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    ae = new_ae(calling_aet, node)
    ae.add_requested_context(FIND)
    assoc = open_association(ae, node)
    if not assoc.accepted_contexts:
        finish(assoc, wait=False)
        raise no_context(node, "Study Root C-FIND")
    return assoc


def find(node: Node, calling_aet: str, criteria: QueryCriteria, cancel: threading.Event | None = None
         ) -> list[StudyRecord] | list[SeriesRecord]:
    """Studies (``criteria.level == "study"``) or series matching ``criteria``."""
    assoc = _find_association(node, calling_aet)
    try:
        with abort_when(cancel, assoc):
            if criteria.level == "study":
                return [StudyRecord.from_dataset(ds) for ds in
                        _find(assoc, node, study_identifier(criteria), cancel, criteria.limit)]
            studies = [StudyRecord.from_dataset(ds) for ds in
                       _find(assoc, node, study_identifier(_study_part(criteria)), cancel)]
            if not studies and criteria.study_uid:  # a node that does not list it at study level
                studies = [StudyRecord(study_uid=criteria.study_uid)]
            series: list[SeriesRecord] = []
            for study in studies:
                for ds in _find(assoc, node, series_identifier(criteria, study.study_uid), cancel):
                    series.append(SeriesRecord.from_dataset(ds, study))
                if criteria.limit and len(series) >= criteria.limit:
                    return series[:criteria.limit]
            return series
    finally:
        finish(assoc, wait=False)


def _study_part(c: QueryCriteria) -> QueryCriteria:
    """The study-level part of a series-level query (modality and description are matched per series)."""
    return QueryCriteria(level="study", patient_name=c.patient_name, patient_id=c.patient_id,
                         study_date=c.study_date, accession=c.accession, study_uid=c.study_uid)


def sop_classes(node: Node, calling_aet: str, study_uid: str) -> list[str]:
    """The SOP classes of a study (SOPClassesInStudy at study level); [] when the node does not say."""
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study_uid
    ds.SOPClassesInStudy = ""
    assoc = _find_association(node, calling_aet)
    try:
        found = _find(assoc, node, ds, None)
    except RequestFailed:
        return []
    finally:
        finish(assoc, wait=False)
    value = found[0].get("SOPClassesInStudy", None) if found else None
    if not value:
        return []
    return [str(v) for v in ([value] if isinstance(value, str) else value) if str(v)]


def list_instances(node: Node, calling_aet: str, study_uid: str, series_uid: str = "",
                   cancel: threading.Event | None = None) -> list[InstanceRef]:
    """Every instance of a study (or one series) the node holds: series-level, then image-level C-FIND."""
    from pydicom.dataset import Dataset

    assoc = _find_association(node, calling_aet)
    try:
        with abort_when(cancel, assoc):
            if series_uid:
                series = [series_uid]
            else:
                ident = series_identifier(QueryCriteria(level="series"), study_uid)
                series = [str(ds.SeriesInstanceUID) for ds in _find(assoc, node, ident, cancel)]
            refs = []
            for uid in series:
                ds = Dataset()
                ds.QueryRetrieveLevel = "IMAGE"
                ds.StudyInstanceUID = study_uid
                ds.SeriesInstanceUID = uid
                ds.SOPInstanceUID = ""
                ds.SOPClassUID = ""
                for r in _find(assoc, node, ds, cancel):
                    refs.append(InstanceRef(study_uid, uid, str(r.get("SOPInstanceUID", "")),
                                            str(r.get("SOPClassUID", "") or "")))
            return [r for r in refs if r.sop_uid]
    finally:
        finish(assoc, wait=False)
