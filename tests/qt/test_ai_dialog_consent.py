"""The Run AI dialog asks before a model's weights are downloaded: note, consent box, Run disabled until ticked."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from ai import totalseg
from ai.registry import parse_manifest
from viewer.qt.dialogs.ai_dialog import RunAiDialog


@pytest.fixture
def manifests(monkeypatch, tmp_path):
    monkeypatch.setenv("TOTALSEG_WEIGHTS_PATH", str(tmp_path / "weights"))
    download = totalseg.manifest_for(totalseg.task("body_fast"), None)  # its weights are not here
    local = parse_manifest({"id": "local-model", "name": "A local model", "version": "1", "modality": "CT",
                            "method": "test", "runner": "ct-body", "outputs": ["labels"], "labels": {"1": "a"}})
    return local, download


def open_dialog(qtbot, tmp_path, manifests, volume):
    dialog = RunAiDialog(list(manifests), volume, QSettings(str(tmp_path / "s.ini"), QSettings.IniFormat))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_a_model_that_needs_a_download_runs_only_after_consent(qtbot, tmp_path, manifests, demo_volume):
    local, download = manifests
    dialog = open_dialog(qtbot, tmp_path, manifests, demo_volume)
    run = dialog.buttons.button(QDialogButtonBox.Ok)
    assert dialog.select_model(download.id)
    assert dialog.download_note.isVisible() and dialog.download_consent.isVisible()
    assert dialog.download_note.text() == download.parameters["download_note"]
    assert "are not on this computer" in dialog.download_note.text()
    assert dialog.download_consent.text() == ("I agree that TotalSegmentator downloads the weights (size unknown) "
                                              "from its servers")
    assert not dialog.download_consent.isChecked() and not run.isEnabled()
    dialog.accept()  # e.g. a double click: refused without consent
    assert dialog.isVisible() and dialog.model_id is None

    qtbot.mouseClick(dialog.download_consent, Qt.LeftButton, pos=dialog.download_consent.rect().center())
    assert dialog.download_consent.isChecked() and run.isEnabled()
    # choosing another model and coming back asks again
    assert dialog.select_model(local.id)
    assert not dialog.download_note.isVisible() and not dialog.download_consent.isVisible() and run.isEnabled()
    assert dialog.select_model(download.id)
    assert not dialog.download_consent.isChecked() and not run.isEnabled()

    dialog.download_consent.setChecked(True)
    qtbot.mouseClick(run, Qt.LeftButton)
    assert dialog.result() == QDialog.Accepted
    assert dialog.model_id == download.id and dialog.options == {"allow_download": True}


def test_a_model_with_its_weights_here_asks_nothing(qtbot, tmp_path, manifests, demo_volume):
    local, _ = manifests
    dialog = open_dialog(qtbot, tmp_path, manifests, demo_volume)
    assert dialog.select_model(local.id)
    assert not dialog.download_consent.isVisible()
    qtbot.mouseClick(dialog.buttons.button(QDialogButtonBox.Ok), Qt.LeftButton)
    assert dialog.result() == QDialog.Accepted and dialog.model_id == local.id and dialog.options == {}
