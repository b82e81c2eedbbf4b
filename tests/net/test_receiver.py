"""radview's always-on receiver ("Receive studies") against a real Orthanc: Orthanc pushes a series to radview's AE
(its REST ``/modalities/radview/store``, a C-STORE from Orthanc) and the series is in the local study database;
pynetdicom's StoreSCU as a configured node stores too, as a node that is not configured it is rejected and nothing is
written; a port in use is a readable error."""
from __future__ import annotations

import json
import os
import socket
import threading

import orthanc_server
import pytest
from pacs_cases import CALLING, CT_PATIENT, CT_SERIES, CT_STUDY, no_temporary_files

from viewer.logic.pacs import start_receiver
from viewer.net.errors import ConnectFailed
from viewer.net.nodes import LocalAE, Node, NodeBook
from viewer.net.records import QueryCriteria

PUSHED = 5  # instances Orthanc pushes (a few: the test stays fast)


def _orthanc_ids(server, n: int) -> list[str]:
    """Orthanc's IDs of ``n`` instances of the CT series."""
    series_id = server.rest("/tools/lookup", CT_SERIES.encode(), "POST")[0]["ID"]
    return [i["ID"] for i in server.rest(f"/series/{series_id}/instances")][:n]


def test_orthanc_pushes_a_series_into_the_local_database(orthanc, dimse_node, database, scp_port):
    heard: list[tuple[str, str]] = []
    lock = threading.Lock()

    def received(item, calling):
        with lock:
            heard.append((item.header.series_uid, calling))

    book = NodeBook(nodes=(dimse_node,), local=LocalAE(CALLING, "127.0.0.1", scp_port, receive=True))
    scp = start_receiver(book, database, on_received=received)
    try:
        ids = _orthanc_ids(orthanc, PUSHED)
        answer = orthanc.rest(f"/modalities/{CALLING.lower()}/store",
                              json.dumps({"Resources": ids, "Synchronous": True}).encode(), "POST")
        assert answer.get("FailedInstancesCount", 0) == 0, answer
        assert scp.wait_idle()
    finally:
        scp.stop()
    assert heard == [(CT_SERIES, orthanc.aet)] * PUSHED  # each instance, with the node that sent it
    assert scp.refused == [] and scp.failed == []
    studies = database.search(QueryCriteria(patient_id=CT_PATIENT))
    assert [s.study_uid for s in studies] == [CT_STUDY] and studies[0].n_instances == PUSHED
    series = database.series_of(CT_STUDY)
    assert [s.series_uid for s in series] == [CT_SERIES]
    folder = database.location(CT_STUDY, CT_SERIES)
    assert len(os.listdir(folder)) == PUSHED and no_temporary_files(database.store) == []


def test_a_configured_node_stores_and_a_stranger_is_rejected(database, ct_folder):
    import pydicom
    from pynetdicom import AE
    from pynetdicom.sop_class import CTImageStorage

    refused: list[tuple[str, str]] = []
    book = NodeBook(nodes=(Node(name="modality", ae_title="MODALITY", host="127.0.0.1", port=104),),
                    local=LocalAE("RADVIEW", "127.0.0.1", orthanc_server.free_port(), receive=True))
    scp = start_receiver(book, database, on_refused=lambda ae, address: refused.append((ae, address)))
    one = pydicom.dcmread(str(sorted(ct_folder.glob("*.dcm"))[0]))
    try:
        def associate(calling: str):
            ae = AE(ae_title=calling)
            ae.add_requested_context(CTImageStorage, one.file_meta.TransferSyntaxUID)
            return ae.associate("127.0.0.1", scp.port, ae_title="RADVIEW")

        stranger = associate("STRANGER")
        assert stranger.is_rejected
        assert database.search(QueryCriteria()) == []
        node = associate("MODALITY")
        assert node.is_established
        status = node.send_c_store(one)
        node.release()
        assert status.Status == 0  # answered once written
        assert scp.wait_idle()
    finally:
        scp.stop()
    assert refused == [("STRANGER", "127.0.0.1")] and scp.refused == refused
    assert [s.study_uid for s in database.search(QueryCriteria())] == [str(one.StudyInstanceUID)]
    assert database.series_of(str(one.StudyInstanceUID))[0].n_instances == 1


def test_a_port_in_use_is_a_readable_error(database):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        book = NodeBook(local=LocalAE("RADVIEW", "127.0.0.1", port, receive=True))
        with pytest.raises(ConnectFailed, match=f"cannot listen on 127.0.0.1:{port}.*another program using the port"):
            start_receiver(book, database)


def test_receive_is_off_by_default_and_saved(tmp_path):
    from viewer.net.nodes import load_nodes, save_nodes

    assert LocalAE().receive is False and NodeBook().local.receive is False
    path = tmp_path / "nodes.json"
    save_nodes(NodeBook(local=LocalAE("RADVIEW", "127.0.0.1", 11112, receive=True)), path)
    assert load_nodes(path).local.receive is True
    path.write_text('{"local": {"ae_title": "RADVIEW"}}')  # older files: no "receive"
    assert load_nodes(path).local == LocalAE("RADVIEW")
    path.write_text('{"local": {"receive": "yes"}}')
    from viewer.net.errors import SettingsError

    with pytest.raises(SettingsError, match="receive"):
        load_nodes(path)
