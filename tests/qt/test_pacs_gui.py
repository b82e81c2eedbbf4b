"""The PACS in the window, against a real Orthanc holding ../shared/data/ct-pancreas-tcia (tests/net/orthanc_server.py:
its own configuration and storage in a temporary folder, random free ports, loopback only, stopped by its PID).

Settings → DICOM nodes…: Test answers for the running Orthanc (C-ECHO, and QIDO-RS for its DICOMweb URL) and says
"refused" for a closed port. File → Query/Retrieve…: query by patient ID, the study's series, retrieve one; the
retrieved series opens in the window (134 slices) while the GUI keeps serving events; a retry fetches nothing
twice; the study is in the local database. File → Export → Send to PACS…: the open series by C-STORE, and a closed
port reported in words. Skipped, with the reason, where Orthanc or the shared data is absent.
"""
from __future__ import annotations

import os

import pytest
from net import orthanc_server
from net.pacs_cases import CALLING, CT, CT_PATIENT, CT_SERIES, CT_SLICES, CT_STUDY
from PySide6.QtCore import Qt
from reference import data_path
from stall_probe import STALL_BOUND_S, StallProbe

NET_TIMEOUT_MS = 60000


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """A private Orthanc holding the CT, for this module's tests."""
    folder = data_path(*CT)
    why = orthanc_server.missing()
    if why:
        pytest.skip(why)
    free = orthanc_server.free_port
    server = orthanc_server.Orthanc(folder=tmp_path_factory.mktemp("orthanc-gui"), dicom_port=free(),
                                    http_port=free(), modalities={CALLING: free()}).start()
    try:
        assert server.upload(folder) == CT_SLICES
        yield server
    finally:
        server.stop()


@pytest.fixture
def pacs_home(tmp_path, monkeypatch):
    """The node settings and the local study database in the test's temporary folder, never the user's."""
    monkeypatch.setenv("RADVIEW_PACS_NODES", str(tmp_path / "pacs-nodes.json"))
    monkeypatch.setenv("RADVIEW_STUDY_DB", str(tmp_path / "studies"))
    return tmp_path


def _node(server, port=None):
    from viewer.net.nodes import Node

    return Node(name="orthanc", ae_title=server.aet, host="127.0.0.1", port=port or server.dicom_port, timeout_s=20)


def _save_book(*nodes) -> None:
    from viewer.net.nodes import NodeBook, save_nodes

    save_nodes(NodeBook(tuple(nodes)))


def _click(qtbot, button) -> None:
    assert button.isEnabled(), f"{button.text()} is disabled"
    qtbot.mouseClick(button, Qt.LeftButton)


def _test_result(qtbot, dialog):
    _click(qtbot, dialog.test_button)
    qtbot.waitUntil(lambda: dialog.last_test is not None, timeout=NET_TIMEOUT_MS)
    return dialog.last_test


def test_nodes_dialog_tests_and_saves(qtbot, new_window, orthanc, pacs_home):
    from viewer.net.nodes import load_nodes

    w = new_window()
    w.action_registry.action("settings.dicom_nodes").trigger()
    dialog = w.pacs.nodes_dialog
    qtbot.waitExposed(dialog)
    _click(qtbot, dialog.add_button)
    qtbot.keyClicks(dialog.name_edit, "-")  # "node 1-": typed into the selected name
    dialog.name_edit.setText("orthanc")
    qtbot.keyClicks(dialog.ae_edit, orthanc.aet)
    qtbot.keyClicks(dialog.host_edit, "127.0.0.1")
    dialog.port_spin.setValue(orthanc.dicom_port)
    dialog.timeout_spin.setValue(10)

    ok, text = _test_result(qtbot, dialog)
    assert ok, text
    assert "C-ECHO OK" in text and dialog.test_result.text().startswith("✓")

    closed = orthanc_server.free_port()  # nothing listens there
    dialog.port_spin.setValue(closed)
    probe = StallProbe().start()
    ok, text = _test_result(qtbot, dialog)
    gap = probe.stop()
    assert not ok
    assert "refused" in text and str(closed) in text, text
    assert dialog.test_result.text().startswith("✗")
    assert gap < STALL_BOUND_S, f"the GUI stalled {gap * 1000:.0f} ms while the Test ran"
    dialog.port_spin.setValue(orthanc.dicom_port)

    # a DICOMweb node: Test runs a QIDO-RS search, with basic authentication
    _click(qtbot, dialog.add_button)
    dialog.name_edit.setText("orthanc-web")
    dialog.url_edit.setText(orthanc.dicomweb_url)
    dialog.auth_box.setCurrentIndex(dialog.auth_box.findData("basic"))
    dialog.user_edit.setText(orthanc.user)
    dialog.secret_edit.setText(orthanc.password)
    ok, text = _test_result(qtbot, dialog)
    assert ok and "QIDO-RS OK" in text, text
    dialog.secret_edit.setText("wrong")
    ok, text = _test_result(qtbot, dialog)
    assert not ok and "HTTP 401" in text and "credentials" in text, text
    dialog.secret_edit.setText(orthanc.password)

    _click(qtbot, dialog.buttons.button(dialog.buttons.StandardButton.Save))
    assert not dialog.isVisible()
    book = load_nodes(os.environ["RADVIEW_PACS_NODES"])
    assert [n.name for n in book.nodes] == ["orthanc", "orthanc-web"]
    assert book.find("orthanc").port == orthanc.dicom_port and book.find("orthanc-web").is_dicomweb
    assert w.pacs.book() == book  # the window uses what was saved


def test_query_retrieve_opens_the_series(qtbot, new_window, orthanc, pacs_home):
    _save_book(_node(orthanc))
    w = new_window()
    w.action_registry.action("file.query_retrieve").trigger()
    dialog = w.pacs.qr_dialog
    qtbot.waitExposed(dialog)
    dialog.set_node("orthanc")
    qtbot.keyClicks(dialog.id_edit, CT_PATIENT)
    _click(qtbot, dialog.search_button)
    qtbot.waitUntil(lambda: dialog.search_job is None, timeout=NET_TIMEOUT_MS)
    assert list(dialog.study_items) == [CT_STUDY], dialog.status_label.text()
    assert "1 study found" in dialog.status_label.text()

    study = dialog.study_items[CT_STUDY]
    qtbot.mouseClick(dialog.results.viewport(), Qt.LeftButton, pos=dialog.results.visualItemRect(study).center())
    qtbot.waitUntil(lambda: CT_STUDY in dialog.series, timeout=NET_TIMEOUT_MS)
    rows = [study.child(i) for i in range(study.childCount())]
    assert [r.data(0, Qt.UserRole).series_uid for r in rows] == [CT_SERIES]
    assert rows[0].text(7) == str(CT_SLICES)
    series_row = rows[0]
    qtbot.mouseClick(dialog.results.viewport(), Qt.LeftButton, pos=dialog.results.visualItemRect(series_row).center())
    assert dialog.results.selectedItems() == [series_row]

    progress = []
    w.pacs.retrieve_progressed.connect(lambda done, total, _text: progress.append((done, total)))
    probe = StallProbe().start()
    _click(qtbot, dialog.retrieve_button)
    assert w.pacs.retrieve_job is not None and not dialog.retrieve_button.isEnabled()
    qtbot.waitUntil(lambda: w.pacs.retrieve_job is None and w.session.volume is not None
                    and w.opener.load_job is None, timeout=NET_TIMEOUT_MS)
    gap = probe.stop()

    run = w.pacs.run
    assert not run.error and not run.cancelled, run.error
    volume = w.session.volume
    assert volume.array.shape[0] == CT_SLICES
    assert volume.meta["series_uid"] == CT_SERIES and volume.meta["study_uid"] == CT_STUDY
    assert run.preview_shown and run.first_image_s is not None  # the first image showed while the rest arrived
    assert run.opened[1] == CT_SERIES
    assert progress[-1] == (CT_SLICES, CT_SLICES) and len(progress) > 10  # the arriving count
    assert dialog.progress_label.text().startswith("✓ Retrieved") and f"{CT_SLICES} instance" in \
        dialog.progress_label.text()
    assert gap < STALL_BOUND_S, f"the GUI stalled {gap * 1000:.0f} ms during the retrieve"
    assert w.browser.series_item(CT_SERIES) is not None

    # the local study database lists it; a retry fetches nothing twice
    w.browser.show_local()
    qtbot.waitUntil(lambda: [s.study_uid for s in w.browser.local.studies] == [CT_STUDY], timeout=10000)
    assert w.browser.local.studies[0].n_instances == CT_SLICES
    dialog.open_check.setChecked(False)
    _click(qtbot, dialog.retrieve_button)
    qtbot.waitUntil(lambda: w.pacs.retrieve_job is None, timeout=NET_TIMEOUT_MS)
    again = w.pacs.run.results[0]
    assert not again.arrived and len(again.already_present) == CT_SLICES and again.complete
    assert "already here" in dialog.progress_label.text()
    files = [f for _, _, names in os.walk(pacs_home / "studies" / "store") for f in names]
    assert len(files) == CT_SLICES

    # File → Export → Send to PACS…: the open series (nothing exported yet), by C-STORE
    w.action_registry.action("export.send_pacs").trigger()
    send = w.pacs.send_dialog
    qtbot.waitExposed(send)
    assert send.choice_list.count() == 1 and send.choice_list.item(0).checkState() == Qt.Checked
    assert len(send.paths()) == CT_SLICES
    _click(qtbot, send.send_button)
    qtbot.waitUntil(lambda: w.pacs.send_job is None, timeout=NET_TIMEOUT_MS)
    assert w.pacs.last_send is not None and w.pacs.last_send.complete, send.result_label.text()
    assert send.result_label.text().startswith(f"✓ Sent {CT_SLICES} file(s)")


def test_failures_are_said_and_the_window_keeps_working(qtbot, new_window, orthanc, pacs_home):
    closed = orthanc_server.free_port()
    _save_book(_node(orthanc, port=closed))
    w = new_window()
    dialog = w.pacs.show_query_retrieve()
    qtbot.waitExposed(dialog)
    qtbot.keyClicks(dialog.id_edit, CT_PATIENT)
    _click(qtbot, dialog.search_button)
    qtbot.waitUntil(lambda: dialog.search_job is None, timeout=NET_TIMEOUT_MS)
    assert "connection refused" in dialog.last_error and str(closed) in dialog.last_error
    assert dialog.status_label.text().startswith("✗") and not dialog.study_items
    # a bad date is refused before anything is sent
    dialog.date_from.setText("2012-13-45x")
    _click(qtbot, dialog.search_button)
    assert "study date" in dialog.last_error
    dialog.date_from.clear()

    # sending to the closed port: refused, said in the dialog and the status bar
    w.action_registry.action("export.send_pacs").trigger()
    send = w.pacs.send_dialog
    from viewer.qt.dialogs.dicom_nodes import SendChoice

    send.add_choice(SendChoice("the CT", (str(data_path(*CT)),)))
    _click(qtbot, send.send_button)
    qtbot.waitUntil(lambda: w.pacs.send_job is None, timeout=NET_TIMEOUT_MS)
    assert send.result_label.text().startswith("✗") and "refused" in send.result_label.text()
    assert "refused" in w.notices.last_message

    # the window still opens and shows things
    w.open_demo()
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks.running, timeout=60000)


def test_local_database_search_open_forget_delete(qtbot, new_window, pacs_home):
    """The study browser's Local database tab: search (wildcards, date range), open from the store, forget, delete.
    Needs only the shared data (the CT is imported into the database)."""
    from viewer.net.study_db import StudyDatabase

    ct = data_path(*CT)
    with StudyDatabase() as db:  # $RADVIEW_STUDY_DB
        stored, skipped = db.import_paths([str(ct)])
        assert len(stored) == CT_SLICES and all(not path.endswith(".dcm") for path, _ in skipped)  # CITATION
        folder = db.location(CT_STUDY)
    w = new_window()
    local = w.browser.local
    assert local.studies == [] and local.summary.text() == ""  # nothing read before the tab is shown

    def search(**fields) -> list[str]:
        for name, text in fields.items():
            getattr(local, name).setText(text)
        with qtbot.waitSignal(local.searched, timeout=10000):
            _click(qtbot, local.search_button)
        return [s.study_uid for s in local.studies]

    with qtbot.waitSignal(local.searched, timeout=10000):
        w.browser.show_local()
    assert [s.study_uid for s in local.studies] == [CT_STUDY]
    assert search(name_edit="pancreas-ct*") == [CT_STUDY]  # wildcards, case-insensitive
    assert search(name_edit="nobody*") == []
    assert search(name_edit="", id_edit=CT_PATIENT, date_from="20120101", date_to="20121231") == [CT_STUDY]
    assert search(date_from="20130101", date_to="") == []
    local.date_from.clear()
    local.modality_box.setCurrentText("MR")
    assert search() == []
    local.modality_box.setCurrentText("CT")
    assert search() == [CT_STUDY]

    # open the series from its folder in the store
    study = local.study_item(CT_STUDY)
    series_row = study.child(0)
    assert "134 images" in series_row.text(0)
    local.tree.setCurrentItem(series_row)
    _click(qtbot, local.open_button)
    qtbot.waitUntil(lambda: w.session.volume is not None and w.opener.load_job is None, timeout=60000)
    assert w.session.volume.array.shape[0] == CT_SLICES
    assert os.path.normpath(w.opener.index.root) == os.path.normpath(folder)

    # forget: gone from the list, the files stay; delete (after confirming): the files go too
    local.tree.setCurrentItem(local.study_item(CT_STUDY))
    with qtbot.waitSignal(local.searched, timeout=10000):
        _click(qtbot, local.forget_button)
    assert local.studies == [] and "Forgot" in local.summary.text()
    assert len(os.listdir(os.path.join(folder, os.listdir(folder)[0]))) == CT_SLICES
    with StudyDatabase() as db:
        db.import_paths([folder])
    with qtbot.waitSignal(local.searched, timeout=10000):
        local.refresh()
    local.tree.setCurrentItem(local.study_item(CT_STUDY))
    _click(qtbot, local.delete_button)
    box = local.confirm_box
    qtbot.waitExposed(box)
    with qtbot.waitSignal(local.searched, timeout=10000):
        _click(qtbot, box.button(box.StandardButton.Yes))
    assert local.studies == [] and "Deleted" in local.summary.text()
    assert not os.path.exists(folder)
