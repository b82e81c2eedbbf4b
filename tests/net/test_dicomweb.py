"""DICOMweb against a real Orthanc (its DICOMweb plugin, HTTP basic authentication on): QIDO-RS search, WADO-RS
retrieve streamed instance by instance and voxel-identical to the original, resume after a cancel, and failures
(wrong password, nothing listening) in words."""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import orthanc_server
import pytest
from pacs_cases import CT_DATE, CT_PATIENT, CT_SERIES, CT_SLICES, CT_STUDY, assert_same_volume, no_temporary_files

from viewer.logic.pacs import EchoRequest, QueryRequest, RetrieveRequest, echo, query, retrieve
from viewer.net.errors import AuthFailed, ConnectFailed
from viewer.net.records import QueryCriteria
from viewer.net.results import RetrieveCancelled


def test_echo_is_a_qido_search(web_node):
    result = echo(EchoRequest(web_node))
    assert result.protocol == "dicomweb" and "QIDO-RS OK" in result.text()


def test_qido_by_patient_id_and_date_range(web_node):
    [study] = query(QueryRequest(web_node, QueryCriteria(patient_id=CT_PATIENT)))
    assert (study.study_uid, study.patient_id, study.study_date, study.n_instances) == \
        (CT_STUDY, CT_PATIENT, CT_DATE, CT_SLICES)
    assert [s.study_uid for s in query(QueryRequest(web_node, QueryCriteria(study_date="20120701-20120710")))] \
        == [CT_STUDY]
    assert query(QueryRequest(web_node, QueryCriteria(study_date="20130101-"))) == []


def test_qido_series_level(web_node):
    [series] = query(QueryRequest(web_node, QueryCriteria(level="series", study_uid=CT_STUDY)))
    assert (series.series_uid, series.modality, series.n_instances, series.patient_id) == \
        (CT_SERIES, "CT", CT_SLICES, CT_PATIENT)


def test_wado_rs_retrieve_is_streamed_and_voxel_identical(web_node, database, ct_original):
    seen, progress = [], []
    request = RetrieveRequest(web_node, CT_STUDY, CT_SERIES)
    assert request.method == "wado"
    result = retrieve(request, progress=lambda done, total, _m="": progress.append((done, total)),
                      on_instance=lambda item: seen.append(time.perf_counter()), database=database)
    assert result.complete and len(result.arrived) == CT_SLICES, (result.failed, result.missing)
    assert len(seen) == CT_SLICES and progress[-1] == (CT_SLICES, CT_SLICES)
    # streamed: the first instance is written long before the last arrives
    assert result.first_instance_s < 0.5 * result.seconds
    assert_same_volume(ct_original, database.location(CT_STUDY, CT_SERIES))
    assert no_temporary_files(database.store) == []


def test_a_cancelled_wado_retrieve_resumes(web_node, tmp_path):
    cancel = threading.Event()
    n = []

    def on_instance(item):
        n.append(item)
        if len(n) == 30:
            cancel.set()

    request = RetrieveRequest(web_node, CT_STUDY, CT_SERIES, "wado", out_dir=str(tmp_path))
    with pytest.raises(RetrieveCancelled) as info:
        retrieve(request, cancel=cancel, on_instance=on_instance)
    first = info.value.result
    assert 30 <= len(first.arrived) < CT_SLICES
    second = retrieve(request)
    assert second.complete and set(second.already_present) == set(first.arrived)
    assert len(second.arrived) == CT_SLICES - len(first.arrived)
    assert len(list(Path(second.destination).glob("*.dcm"))) == CT_SLICES


def test_a_wrong_password_is_an_authentication_error(web_node):
    wrong = dataclasses.replace(web_node, secret="wrong")
    with pytest.raises(AuthFailed, match="HTTP 401.*check the node's credentials"):
        query(QueryRequest(wrong, QueryCriteria(patient_id=CT_PATIENT)))


def test_nothing_listening_is_a_connection_error_within_the_timeout(web_node):
    closed = dataclasses.replace(web_node, dicomweb_url=f"http://127.0.0.1:{orthanc_server.free_port()}/dicom-web",
                                 timeout_s=5)
    t0 = time.monotonic()
    with pytest.raises(ConnectFailed, match="cannot connect to http://127.0.0.1:.*refused"):
        echo(EchoRequest(closed))
    assert time.monotonic() - t0 < 5


def test_a_few_missing_instances_are_fetched_one_by_one(web_node, tmp_path):
    request = RetrieveRequest(web_node, CT_STUDY, CT_SERIES, "wado", out_dir=str(tmp_path))
    assert retrieve(request).complete
    folder = Path(request.out_dir) / CT_STUDY / CT_SERIES
    lost = sorted(folder.glob("*.dcm"))[10:13]
    for f in lost:
        f.unlink()
    again = retrieve(request)
    assert again.complete and sorted(again.arrived) == sorted(f.stem for f in lost)
    assert len(again.already_present) == CT_SLICES - 3
