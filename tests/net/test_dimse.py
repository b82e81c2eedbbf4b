"""DIMSE against a real Orthanc: C-ECHO, C-FIND, C-GET and C-MOVE (voxel-identical to the original), an
interrupted retrieve that resumes with every instance exactly once, and failures that say what went wrong."""
from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import orthanc_server
import pytest
from pacs_cases import (
    CALLING,
    CT_DATE,
    CT_PATIENT,
    CT_SERIES,
    CT_SLICES,
    CT_STUDY,
    assert_same_volume,
    no_temporary_files,
)

from radview_base.cancel import Cancelled
from viewer.logic.pacs import EchoRequest, QueryRequest, RetrieveRequest, echo, query, retrieve
from viewer.net.errors import AssociationRejected, ConnectFailed, NetTimeout, SettingsError
from viewer.net.nodes import LocalAE, Node
from viewer.net.records import QueryCriteria, SeriesRecord, StudyRecord
from viewer.net.results import RetrieveCancelled


def test_echo(dimse_node):
    result = echo(EchoRequest(dimse_node, CALLING))
    assert result.protocol == "dimse" and 0 < result.seconds < 20
    assert "C-ECHO OK" in result.text()


def test_query_by_patient_id(dimse_node):
    studies = query(QueryRequest(dimse_node, QueryCriteria(patient_id=CT_PATIENT), CALLING))
    assert [s.study_uid for s in studies] == [CT_STUDY]
    s = studies[0]
    assert isinstance(s, StudyRecord)
    assert (s.patient_id, s.patient_name, s.study_date, s.modalities, s.n_instances) == \
        (CT_PATIENT, CT_PATIENT, CT_DATE, ("CT",), CT_SLICES)
    assert query(QueryRequest(dimse_node, QueryCriteria(patient_id="nobody"), CALLING)) == []


@pytest.mark.parametrize("dates, found", [("20120101-20121231", True), ("20120706", True), ("20120707-", False),
                                          ("-20120705", False), ("20120706-", True)])
def test_query_by_date_range(dimse_node, dates, found):
    studies = query(QueryRequest(dimse_node, QueryCriteria(study_date=dates), CALLING))
    assert [s.study_uid for s in studies] == ([CT_STUDY] if found else [])


def test_query_series_level(dimse_node):
    series = query(QueryRequest(dimse_node, QueryCriteria(level="series", patient_name="Pancreas*", modality="CT"),
                                CALLING))
    assert len(series) == 1 and isinstance(series[0], SeriesRecord)
    s = series[0]
    assert (s.study_uid, s.series_uid, s.modality, s.n_instances, s.patient_id, s.study_date) == \
        (CT_STUDY, CT_SERIES, "CT", CT_SLICES, CT_PATIENT, CT_DATE)
    js = s.to_json()
    assert {"study_uid", "series_uid", "patient_id", "study_date", "modality", "description", "n_instances"} <= set(js)
    assert query(QueryRequest(dimse_node, QueryCriteria(level="series", study_uid=CT_STUDY, modality="MR"),
                              CALLING)) == []


def test_c_get_into_a_folder_is_voxel_identical(dimse_node, tmp_path, ct_original):
    seen = []
    request = RetrieveRequest(dimse_node, CT_STUDY, CT_SERIES, "get", CALLING, out_dir=str(tmp_path / "out"))
    result = retrieve(request, on_instance=seen.append)
    assert result.complete and result.expected == CT_SLICES and len(result.arrived) == CT_SLICES
    assert len(seen) == CT_SLICES and result.first_instance_s is not None
    assert result.first_instance_s < result.seconds
    folder = Path(result.destination)
    assert folder == tmp_path / "out" / CT_STUDY / CT_SERIES
    assert len(list(folder.glob("*.dcm"))) == CT_SLICES
    assert_same_volume(ct_original, folder)
    assert no_temporary_files(tmp_path) == []
    again = retrieve(request)  # nothing missing: nothing fetched, nothing written twice
    assert again.complete and again.arrived == () and len(again.already_present) == CT_SLICES


def test_c_move_into_the_database_is_voxel_identical(dimse_node, database, scp_port, ct_original):
    request = RetrieveRequest(dimse_node, CT_STUDY, "", "move", CALLING, local=LocalAE(CALLING, "127.0.0.1", scp_port))
    result = retrieve(request, database=database)
    assert result.complete and len(result.arrived) == CT_SLICES, result.failed
    assert_same_volume(ct_original, database.location(CT_STUDY, CT_SERIES))
    [study] = database.search(QueryCriteria(patient_id=CT_PATIENT))
    assert study.n_instances == CT_SLICES and study.modalities == ("CT",)
    # nothing of radview listens after the retrieve: the receiver lived for its duration only
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", scp_port), timeout=1).close()


def test_an_interrupted_retrieve_resumes_with_every_instance_once(dimse_node, database, orthanc):
    cancel = threading.Event()
    stop_after = 40

    def on_instance(item):
        if len(arrived) + 1 >= stop_after:
            cancel.set()
        arrived.append(item.header.sop_uid)

    arrived: list[str] = []
    request = RetrieveRequest(dimse_node, CT_STUDY, CT_SERIES, "get", CALLING)
    with pytest.raises(RetrieveCancelled) as info:
        retrieve(request, cancel=cancel, on_instance=on_instance, database=database)
    first = info.value.result
    assert isinstance(info.value, Cancelled)
    assert stop_after <= len(first.arrived) < CT_SLICES, "the cancel stopped the transfer part-way"
    assert len(first.missing) == CT_SLICES - len(first.arrived)
    second = retrieve(request, database=database)
    assert second.complete, (second.failed, second.missing)
    assert set(second.already_present) == set(first.arrived)
    assert set(second.arrived).isdisjoint(first.arrived)
    assert len(second.arrived) + len(first.arrived) == CT_SLICES
    files = sorted(Path(database.location(CT_STUDY, CT_SERIES)).glob("*.dcm"))
    assert len(files) == CT_SLICES == len({f.name for f in files})
    assert len(database.files_of(CT_STUDY)) == CT_SLICES
    assert no_temporary_files(database.store) == []
    assert {f.stem for f in files} == orthanc.sop_instance_uids() & {f.stem for f in files}


def test_a_cancelled_move_resumes_too(dimse_node, database, scp_port):
    cancel = threading.Event()
    count = []

    def on_instance(item):
        count.append(1)
        if len(count) == 25:
            cancel.set()

    request = RetrieveRequest(dimse_node, CT_STUDY, CT_SERIES, "move", CALLING,
                              local=LocalAE(CALLING, "127.0.0.1", scp_port))
    with pytest.raises(RetrieveCancelled):
        retrieve(request, cancel=cancel, on_instance=on_instance, database=database)
    result = retrieve(request, database=database)
    assert result.complete and len(result.arrived) + len(result.already_present) == CT_SLICES
    assert len(list(Path(database.location(CT_STUDY, CT_SERIES)).glob("*.dcm"))) == CT_SLICES


def test_an_unknown_calling_ae_title_is_a_rejected_association(dimse_node):
    with pytest.raises(AssociationRejected, match="Calling AE title not recognised.*add STRANGER"):
        echo(EchoRequest(dimse_node, "STRANGER"))


def test_a_stopped_orthanc_is_a_clear_error_within_the_timeout(tmp_path, ct_folder):
    if orthanc_server.missing():
        pytest.skip(orthanc_server.missing())
    server = orthanc_server.Orthanc(folder=tmp_path / "o", dicom_port=orthanc_server.free_port(),
                                    http_port=orthanc_server.free_port(), modalities={CALLING: 1})
    server.start()
    node = Node(name="stopped", ae_title="ORTHANC", host="127.0.0.1", port=server.dicom_port, timeout_s=5)
    assert echo(EchoRequest(node, CALLING)).protocol == "dimse"
    server.stop()
    for run in (lambda: echo(EchoRequest(node, CALLING)),
                lambda: query(QueryRequest(node, QueryCriteria(patient_id=CT_PATIENT), CALLING)),
                lambda: retrieve(RetrieveRequest(node, CT_STUDY, method="get", out_dir=str(tmp_path / "x")))):
        t0 = time.monotonic()
        with pytest.raises(ConnectFailed, match=f"connection refused at 127.0.0.1:{server.dicom_port}"):
            run()
        assert time.monotonic() - t0 < node.timeout_s
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").rglob("*.dcm"))


def test_a_port_that_never_answers_times_out_within_the_timeout():
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts the connection (backlog), never speaks DICOM
    try:
        node = Node(name="silent", ae_title="ANY", host="127.0.0.1", port=silent.getsockname()[1], timeout_s=1.5)
        t0 = time.monotonic()
        with pytest.raises(NetTimeout, match="did not answer the DICOM association request within 1.5 s"):
            echo(EchoRequest(node, CALLING))
        assert time.monotonic() - t0 < 3 * node.timeout_s
    finally:
        silent.close()


def test_the_receiver_accepts_only_configured_nodes_and_listens_on_loopback(database):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    from viewer.logic.pacs import start_receiver
    from viewer.net.nodes import NodeBook

    book = NodeBook(nodes=(Node(name="pacs", ae_title="PACS", host="127.0.0.1", port=104),),
                    local=LocalAE("RADVIEW", "127.0.0.1", orthanc_server.free_port()))
    scp = start_receiver(book, database)
    try:
        assert scp.host == "127.0.0.1"

        def associate(calling: str, bind: str):
            ae = AE(ae_title=calling)
            ae.add_requested_context(Verification)
            return ae.associate("127.0.0.1", scp.port, ae_title="RADVIEW", bind_address=(bind, 0))

        ok = associate("PACS", "127.0.0.1")
        assert ok.is_established and ok.send_c_echo().Status == 0
        ok.release()
        stranger = associate("STRANGER", "127.0.0.1")
        assert stranger.is_rejected
        wrong_host = associate("PACS", "127.0.0.2")  # the right title from another address
        assert wrong_host.is_rejected
        assert scp.refused == [("STRANGER", "127.0.0.1"), ("PACS", "127.0.0.2")]
    finally:
        scp.stop()
    assert os.listdir(database.store) == []


def test_the_background_receiver_takes_a_move_and_reports_each_arrival(dimse_node, database, scp_port):
    """The GUI's flow: radview's receiver runs (configured local AE, the node allowed), a C-MOVE names it."""
    from viewer.logic.pacs import start_receiver
    from viewer.net.nodes import NodeBook

    heard = []
    book = NodeBook(nodes=(dimse_node,), local=LocalAE(CALLING, "127.0.0.1", scp_port))
    scp = start_receiver(book, database, on_instance=heard.append)
    try:
        request = RetrieveRequest(dimse_node, CT_STUDY, CT_SERIES, "move", CALLING)
        result = retrieve(request, scp=scp, database=database)
        assert result.complete and len(result.arrived) == CT_SLICES
        assert len(heard) == CT_SLICES and {h.header.series_uid for h in heard} == {CT_SERIES}
        assert scp.refused == [] and scp.failed == []
        with pytest.raises(SettingsError, match="C-MOVE into a folder needs C-GET"):
            retrieve(RetrieveRequest(dimse_node, CT_STUDY, CT_SERIES, "move", CALLING, out_dir="/nonexistent"),
                     scp=scp)
    finally:
        scp.stop()
    assert database.search(QueryCriteria(patient_id=CT_PATIENT))[0].n_instances == CT_SLICES
