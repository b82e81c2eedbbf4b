"""The foundation main window: background scan and load with progress, first image, cancel, errors."""
from __future__ import annotations

import numpy as np
import pytest

from reference import data_path
from viewer.qt.main_window import MainWindow


@pytest.fixture
def window(qtbot):
    w = MainWindow()
    qtbot.addWidget(w)
    w.show()
    yield w
    w.tasks.shutdown()


def test_open_folder_indexes_and_loads_largest_series(window, qtbot):
    folder = data_path("odd-dicom", "failing")
    window.open_path(str(folder))
    qtbot.waitUntil(lambda: window.volume is not None, timeout=20000)
    assert window.index is not None and len(window.index.series) >= 6
    shown = window.image_view.getImageItem().image
    assert shown is not None and shown.shape == window.volume.array.shape[1:]
    assert np.array_equal(shown, window.volume.array[window.image_view.currentIndex])
    # the browser lists every series, refused ones included, with their reasons as tool tips
    items = []
    root = window.browser.invisibleRootItem()
    stack = [root.child(i) for i in range(root.childCount())]
    while stack:
        it = stack.pop()
        stack.extend(it.child(i) for i in range(it.childCount()))
        if it.data(0, 0x0100):
            items.append(it)
    assert len(items) == len(window.index.series)
    assert any("not a volume" in it.toolTip(0) for it in items)


def test_gui_stays_responsive_and_reports_errors(window, qtbot, tmp_path):
    (tmp_path / "junk.dcm").write_bytes(b"not dicom at all" * 10)
    window.open_path(str(tmp_path))
    qtbot.waitUntil(lambda: window.index is not None, timeout=10000)
    assert window.index.skipped and window.index.skipped[0].reason == "not a DICOM file"
    assert window.volume is None
    assert "1 files skipped" in window.status_label.text()


def test_cancel_stops_the_worker(window, qtbot):
    import threading

    started = threading.Event()

    def slow(progress, cancel):
        from viewer.core.dicom_index import Cancelled

        started.set()
        for i in range(1000):
            if cancel.is_set():
                raise Cancelled("stop")
            progress(i, 1000, "")
            threading.Event().wait(0.01)
        return "done"

    results = []
    job = window._start(slow, results.append, "slow task")
    qtbot.waitUntil(started.is_set, timeout=5000)
    window.cancel_current()
    qtbot.waitUntil(lambda: not window.tasks.is_running(job), timeout=5000)
    assert results == [] and window.status_label.text() == "Cancelled"


def test_open_nifti_file(window, qtbot, tmp_path):
    from viewer.core.geometry import Geometry
    from viewer.core.image_io import write_image
    from viewer.core.volume import Volume

    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    path = write_image(Volume(arr, Geometry((4, 5, 6), (2.0, 1.0, 0.5), (1, 2, 3))), str(tmp_path / "v.nii.gz"))
    window.open_path(path)
    qtbot.waitUntil(lambda: window.volume is not None, timeout=10000)
    assert np.array_equal(window.volume.array, arr)
    assert window.volume.geometry.spacing_zyx == (2.0, 1.0, 0.5)
