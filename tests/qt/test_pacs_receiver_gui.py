"""radview's always-on receiver and screenshots sent as Secondary Capture, in the window, against a real Orthanc
(tests/net/orthanc_server.py: its own configuration and storage in a temporary folder, random free ports, loopback
only, stopped by its PID).

"Receive studies" on: the window starts the receiver in the background; Orthanc pushes a few CT slices to radview's
AE (its REST ``/modalities/radview/store``); the Local database tab lists the series as it arrives and the status bar
says "Receiving from ORTHANC: N instances", while the GUI keeps serving events; closing the window frees the port.
A port in use is said in words, the window keeps working, and saving the settings once the port is free starts it.
File → Export → Send to PACS… sends an exported screenshot as a DICOM Secondary Capture in the study it shows.
"""
from __future__ import annotations

import json
import socket
import threading

import pytest
from net import orthanc_server
from net.pacs_cases import CALLING, CT, CT_PATIENT, CT_SERIES, CT_STUDY
from PySide6.QtCore import Qt
from reference import data_path
from stall_probe import STALL_BOUND_S, StallProbe

NET_TIMEOUT_MS = 30000
PUSHED = 6  # CT slices in this module's Orthanc (a few: the tests stay fast)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """A private Orthanc holding a few slices of the CT; it knows radview's AE (RADVIEW) and the port it
    receives on."""
    folder = data_path(*CT)
    why = orthanc_server.missing()
    if why:
        pytest.skip(why)
    free = orthanc_server.free_port
    server = orthanc_server.Orthanc(folder=tmp_path_factory.mktemp("orthanc-receive"), dicom_port=free(),
                                    http_port=free(), modalities={CALLING: free()}).start()
    try:
        for f in sorted(folder.glob("*.dcm"))[:PUSHED]:
            server.rest("/instances", f.read_bytes(), "POST", "application/dicom")
        yield server
    finally:
        server.stop()


@pytest.fixture
def pacs_home(tmp_path, monkeypatch):
    """The node settings and the local study database in the test's temporary folder, never the user's."""
    monkeypatch.setenv("RADVIEW_PACS_NODES", str(tmp_path / "pacs-nodes.json"))
    monkeypatch.setenv("RADVIEW_STUDY_DB", str(tmp_path / "studies"))
    return tmp_path


def _save_book(server, port: int, receive: bool = True) -> None:
    from viewer.net.nodes import LocalAE, Node, NodeBook, save_nodes

    node = Node(name="orthanc", ae_title=server.aet, host="127.0.0.1", port=server.dicom_port, timeout_s=20)
    save_nodes(NodeBook((node,), LocalAE(CALLING, "127.0.0.1", port, receive=receive)))


def _push(server) -> threading.Thread:
    """Orthanc sends its CT slices to radview's AE (a C-STORE from Orthanc), from a thread: the REST call waits for
    the whole send."""
    def run():
        series_id = server.rest("/tools/lookup", CT_SERIES.encode(), "POST")[0]["ID"]
        body = json.dumps({"Resources": [series_id], "Synchronous": True}).encode()
        pushed.append(server.rest(f"/modalities/{CALLING.lower()}/store", body, "POST"))

    pushed: list = []
    thread = threading.Thread(target=run, name="orthanc-push")
    thread.pushed = pushed
    thread.start()
    return thread


def _nothing_listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_the_window_shows_an_arriving_series_without_blocking(qtbot, new_window, orthanc, pacs_home):
    port = orthanc.modalities[CALLING]
    _save_book(orthanc, port)
    w = new_window()
    receiver = w.pacs.receiver
    qtbot.waitUntil(lambda: receiver.listening, timeout=NET_TIMEOUT_MS)
    assert receiver.label.isVisible() and f"{CALLING}@127.0.0.1:{port}" in receiver.label.text()
    assert not _nothing_listens(port)
    local = w.browser.local
    with qtbot.waitSignal(local.searched, timeout=10000):
        w.browser.show_local()
    assert local.studies == []

    arrived, notes = [], []
    receiver.series_arrived.connect(lambda study, series, ae: arrived.append((study, series, ae)))
    receiver.arrivals_shown.connect(lambda _n: notes.append(receiver.last_note))
    probe = StallProbe().start()
    pusher = _push(orthanc)
    qtbot.waitUntil(lambda: [s.study_uid for s in local.studies] == [CT_STUDY]
                    and local.studies[0].n_instances == PUSHED, timeout=NET_TIMEOUT_MS)
    qtbot.waitUntil(lambda: receiver.last_note.startswith("Received"), timeout=NET_TIMEOUT_MS)
    gap = probe.stop()
    pusher.join(10)
    assert pusher.pushed and pusher.pushed[0].get("FailedInstancesCount", 0) == 0, pusher.pushed
    assert arrived == [(CT_STUDY, CT_SERIES, orthanc.aet)]  # once per series
    assert notes and all(n.startswith(f"Receiving from {orthanc.aet}: ") and n.endswith(" instances") for n in notes)
    assert notes[-1] == f"Receiving from {orthanc.aet}: {PUSHED} instances"
    assert receiver.last_note.startswith(f"Received {PUSHED} instances from {orthanc.aet} (1 series)")
    assert local.studies[0].patient_id == CT_PATIENT
    assert gap < STALL_BOUND_S, f"the GUI stalled {gap * 1000:.0f} ms while the series arrived"

    # a stranger is refused and said so; nothing of it is written
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(Verification)
    assert ae.associate("127.0.0.1", port, ae_title=CALLING).is_rejected
    qtbot.waitUntil(lambda: receiver.refused == [("STRANGER", "127.0.0.1")], timeout=10000)
    assert "Refused a DICOM association from STRANGER" in w.notices.last_message

    # the local series opens from the store
    series_row = local.study_item(CT_STUDY).child(0)
    local.tree.setCurrentItem(series_row)
    qtbot.mouseClick(local.open_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.session.volume is not None and w.opener.load_job is None, timeout=NET_TIMEOUT_MS)
    assert w.session.volume.array.shape[0] == PUSHED

    w.close()  # stops the receiver: the port is free again
    assert receiver.scp is None and _nothing_listens(port)


def test_a_port_in_use_is_said_and_the_window_keeps_working(qtbot, new_window, orthanc, pacs_home):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        _save_book(orthanc, port)
        w = new_window()
        receiver = w.pacs.receiver
        qtbot.waitUntil(lambda: bool(receiver.error), timeout=NET_TIMEOUT_MS)
        assert f"cannot listen on 127.0.0.1:{port}" in receiver.error and "another program" in receiver.error
        assert "Receive studies is on, but" in w.notices.last_message and not receiver.listening
        assert receiver.label.text().startswith("Receiver off:")
        dialog = w.pacs.show_nodes()  # the settings say why, and the window still answers
        qtbot.waitExposed(dialog)
        assert dialog.receive_check.isChecked()
        assert dialog.receiver_label.text().startswith("✗") and "cannot listen" in dialog.receiver_label.text()
    finally:
        taken.close()
    # the port is free now: saving the settings starts the receiver
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Save), Qt.LeftButton)
    qtbot.waitUntil(lambda: receiver.listening, timeout=NET_TIMEOUT_MS)
    assert not receiver.error and f"127.0.0.1:{port}" in receiver.label.text()
    # turning "Receive studies" off stops it
    dialog = w.pacs.show_nodes()
    qtbot.waitExposed(dialog)
    assert dialog.receiver_label.text().startswith("✓")
    dialog.receive_check.setChecked(False)
    qtbot.mouseClick(dialog.buttons.button(dialog.buttons.StandardButton.Save), Qt.LeftButton)
    qtbot.waitUntil(lambda: not receiver.busy and receiver.scp is None, timeout=NET_TIMEOUT_MS)
    assert _nothing_listens(port) and not receiver.label.isVisible()


def test_a_move_goes_into_the_running_receiver(qtbot, new_window, orthanc, pacs_home):
    """With the receiver running on radview's port, a C-MOVE of the window's uses it (it cannot open a second one
    there) and ends complete."""
    from viewer.qt.dialogs.query_retrieve import RetrieveOrder, RetrieveTarget

    _save_book(orthanc, orthanc.modalities[CALLING])
    w = new_window()
    qtbot.waitUntil(lambda: w.pacs.receiver.listening, timeout=NET_TIMEOUT_MS)
    node = w.pacs.book().find("orthanc")
    assert w.pacs.receiver.serving(w.pacs.book(), node) is w.pacs.receiver.scp
    order = RetrieveOrder(node, (RetrieveTarget(CT_STUDY, CT_SERIES, "CT", PUSHED),), "move", open_first=False)
    assert w.pacs.retrieve(order) is not None
    qtbot.waitUntil(lambda: w.pacs.retrieve_job is None, timeout=NET_TIMEOUT_MS)
    run = w.pacs.run
    assert not run.error, run.error
    assert run.results[0].complete and len(run.results[0].arrived) == PUSHED
    assert w.pacs.receiver.listening and w.pacs.receiver.scp.running  # still receiving afterwards


def test_receive_off_listens_nowhere(qtbot, new_window, orthanc, pacs_home):
    port = orthanc_server.free_port()
    _save_book(orthanc, port, receive=False)
    w = new_window()
    qtbot.waitUntil(lambda: not w.tasks.running, timeout=10000)  # the settings were read
    assert w.pacs.receiver.scp is None and not w.pacs.receiver.listening and _nothing_listens(port)


def test_a_screenshot_is_sent_as_secondary_capture(qtbot, new_window, orthanc, pacs_home, demo_paths):
    from viewer.export.secondary_capture import SC_SOP_CLASS
    from viewer.logic.pacs_capture import sc_uids

    _save_book(orthanc, orthanc.modalities[CALLING], receive=False)
    w = new_window(size=(1000, 700))
    w.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks.running, timeout=60000)
    shot = pacs_home / "shot.png"
    assert w.export_screenshot(str(shot)) == str(shot)

    w.action_registry.action("export.send_pacs").trigger()
    send = w.pacs.send_dialog
    qtbot.waitExposed(send)
    first = send.choice_list.item(0)
    assert first.text().startswith("Screenshot shot.png as DICOM Secondary Capture")
    assert first.checkState() == Qt.Checked
    assert send.choice_list.item(1).text().startswith("The open series") and \
        send.choice_list.item(1).checkState() == Qt.Unchecked
    assert send.paths() == (str(shot),)
    qtbot.mouseClick(send.send_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: w.pacs.send_job is None, timeout=NET_TIMEOUT_MS)
    assert w.pacs.last_send.complete and w.pacs.last_send.sent == (str(shot),), send.result_label.text()
    assert send.result_label.text().startswith("✓ Sent 1 file(s)")

    study_uid = str(w.session.volume.meta["study_uid"])
    found = orthanc.rest("/tools/lookup", sc_uids(study_uid, shot.read_bytes())[1].encode(), "POST")
    assert [f["Type"] for f in found] == ["Instance"]
    tags = orthanc.rest(f"/instances/{found[0]['ID']}/simplified-tags")
    assert tags["SOPClassUID"] == SC_SOP_CLASS and tags["StudyInstanceUID"] == study_uid
    assert tags["SeriesInstanceUID"] != demo_paths.ct_series_uid and tags["PhotometricInterpretation"] == "RGB"
