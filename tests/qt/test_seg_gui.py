"""DICOM SEG and DICOMDIR in the real window: the browser lists a SEG under the series it was made on; activating it
loads that series and shows the SEG over it with its segment names and recommended colours; Load segmentation
offers ``*.dcm``; a patient's CD opens through its DICOMDIR, read-only, writing nothing next to it.

Real cases from ../shared/data/seg-dcmqi (skipped with the reason when absent).
"""
from __future__ import annotations

import os
import shutil
import stat

import pytest
from PySide6.QtCore import QSettings, Qt
from reference import data_path

from viewer.qt.controllers import study_opener
from viewer.qt.main_window import MainWindow
from viewer.qt.panels.study_browser import COL_SERIES, SEG_ROLE

LIVER_RGB = (221, 130, 101)
SHOTS = os.environ.get("RADVIEW_TEST_SHOTS")  # a folder: the tests save what they show there, to look at


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    yield w
    w.close()


@pytest.fixture
def study(tmp_path):
    """The 3-slice CT and its liver SEG in one folder (copies: the shared data stays untouched)."""
    ct, liver = data_path("seg-dcmqi", "ct-3slice"), data_path("seg-dcmqi", "liver.dcm")
    folder = tmp_path / "study"
    shutil.copytree(ct, folder / "ct")
    shutil.copy(liver, folder / "liver.dcm")
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    os.chmod(folder, 0o755)
    return folder


def idle(window) -> bool:
    return not window.tasks._running


def save_shot(window, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        window.grab().save(os.path.join(SHOTS, name))


def liver_layer(window):
    layers = [layer for layer in window.session.label_layers() if layer.meta.get("source_kind") == "DICOM SEG"]
    return layers[0] if len(layers) == 1 else None


def test_the_browser_lists_the_seg_under_its_series_and_opens_it_over_the_series(window, qtbot, study):
    window.open_path(str(study))
    qtbot.waitUntil(lambda: window.session.volume is not None and idle(window), timeout=30000)
    index = window.opener.index
    (series,) = index.series
    assert not index.skipped  # the SEG is no longer a skipped file
    rows = window.browser.segmentation_items()
    assert list(rows) == [(series.key, str(study / "liver.dcm"))]
    row = rows[(series.key, str(study / "liver.dcm"))]
    assert row.parent() is window.browser.series_item(series.key)
    assert "SEG: Liver Segmentation" in row.text(COL_SERIES) and "Liver" in row.text(COL_SERIES).splitlines()[1]
    assert "segmentation" in window.browser.summary.text()
    window.session.clear()  # nothing shown: activating the SEG must load the series first
    assert window.session.volume is None
    rect = window.browser.tree.visualItemRect(row)
    assert rect.isValid()
    emitted = []
    window.browser.segmentation_activated.connect(lambda *args: emitted.append(args))
    with qtbot.waitSignal(window.browser.segmentation_activated, timeout=3000) as blocker:
        # a double-click as the mouse makes it: press and release, then the second press
        qtbot.mouseClick(window.browser.tree.viewport(), Qt.LeftButton, pos=rect.center())
        qtbot.mouseDClick(window.browser.tree.viewport(), Qt.LeftButton, pos=rect.center())
    assert blocker.args == [series.key, str(study / "liver.dcm")]
    qtbot.waitUntil(lambda: liver_layer(window) is not None and idle(window), timeout=30000)
    assert window.session.volume.meta["series_key"] == series.key
    layer = liver_layer(window)
    assert layer.name == "Liver Segmentation" and layer.label_map.labels == {1: "Liver"}
    assert layer.label_name(1) == "Liver"
    assert all(abs(c - e) <= 1 for c, e in zip(layer.colors[1], LIVER_RGB))
    assert "Liver" in window.notices.last_message or "Liver" in window.notices.status_label.text()
    assert len(emitted) == 1 and len(window.session.label_layers()) == 1  # the double-click opened it once
    save_shot(window, "seg_over_series.png")
    # activating it again neither reloads the series nor adds a second layer
    volume = window.session.volume
    window.opener.open_segmentation_over(series.key, str(study / "liver.dcm"))
    qtbot.waitUntil(lambda: idle(window), timeout=10000)
    assert window.session.volume is volume and len(window.session.label_layers()) == 1


def test_load_segmentation_offers_dicom_seg_and_shows_it_over_the_open_series(window, qtbot, study):
    assert "*.dcm" in study_opener.LABEL_FILTER.split(";;")[0] and "DICOM SEG (*.dcm)" in study_opener.LABEL_FILTER
    window.open_path(str(study / "ct"))
    qtbot.waitUntil(lambda: window.session.volume is not None and idle(window), timeout=30000)
    window.load_segmentation(str(study / "liver.dcm"))
    qtbot.waitUntil(lambda: liver_layer(window) is not None and idle(window), timeout=30000)
    layer = liver_layer(window)
    assert layer.label_map.labels == {1: "Liver"} and "not on this series' grid" not in window.notices.last_message
    assert layer.geometry == window.session.volume.geometry


def test_opening_a_seg_file_of_the_open_study_shows_it_over_its_series(window, qtbot, study):
    window.open_path(str(study))
    qtbot.waitUntil(lambda: window.session.volume is not None and idle(window), timeout=30000)
    window.open_path(str(study / "liver.dcm"))  # File → Open file… of the SEG
    qtbot.waitUntil(lambda: liver_layer(window) is not None and idle(window), timeout=30000)
    assert window.session.volume.meta.get("modality") == "CT"  # the series, not the SEG on its own grid
    assert liver_layer(window).label_map.labels == {1: "Liver"}


def test_a_read_only_cd_opens_through_its_dicomdir_and_nothing_is_written(window, qtbot, study, tmp_path):
    from pydicom.fileset import FileSet

    cd = tmp_path / "cd"
    fs = FileSet()
    for path in sorted((study / "ct").iterdir()) + [study / "liver.dcm"]:
        fs.add(str(path))
    fs.write(str(cd))
    (cd / "STRAY.DCM").write_bytes((study / "ct" / "01.dcm").read_bytes())  # not listed: never read
    for root, dirs, files in os.walk(cd):
        for name in dirs + files:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode & ~0o222)
    os.chmod(cd, os.stat(cd).st_mode & ~0o222)

    def snapshot():
        out = {}
        for root, dirs, files in os.walk(cd):
            for name in [""] + dirs + files:
                path = os.path.join(root, name) if name else root
                st = os.lstat(path)
                out[os.path.relpath(path, cd)] = (stat.S_IFMT(st.st_mode), st.st_size, st.st_mode, st.st_mtime_ns)
        return out

    before = snapshot()
    try:
        window.open_path(str(cd))
        qtbot.waitUntil(lambda: window.session.volume is not None and idle(window), timeout=30000)
        index = window.opener.index
        assert index.root == str(cd) and len(index.series) == 1 and index.series[0].n_images == 3
        assert all("STRAY" not in f for f in index.series[0].files)
        ((key, seg_path), row), = window.browser.segmentation_items().items()
        assert row.data(COL_SERIES, SEG_ROLE) == seg_path and seg_path.startswith(str(cd))
        qtbot.waitUntil(lambda: not window.browser.thumbnails_pending(), timeout=15000)
        window.browser.tree.setCurrentItem(row)
        window.browser.tree.setFocus()
        qtbot.keyClick(window.browser.tree, Qt.Key_Return)
        qtbot.waitUntil(lambda: liver_layer(window) is not None and idle(window), timeout=30000)
        assert liver_layer(window).label_map.labels == {1: "Liver"}
        save_shot(window, "dicomdir_cd.png")
        assert snapshot() == before  # tests run as root: read-only modes do not stop writes, so compare
    finally:
        for root, _dirs, files in os.walk(cd):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
