import gc
import os
import weakref

import pytest

os.environ.setdefault("QT_QPA_PLATFORM",
                      "offscreen" if not os.environ.get("DISPLAY") else os.environ.get("QT_QPA_PLATFORM", "xcb"))


@pytest.fixture(scope="session")
def qapp_cls():
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    pg.setConfigOptions(imageAxisOrder="row-major")
    return QApplication


@pytest.fixture(autouse=True)
def annotations_in_a_temporary_folder(tmp_path_factory):
    """Windows opened by tests autosave their measurements (and their AI and edited label layers) to a temporary
    folder, never the user's: a fresh one per test, so one test's saved layers never come back in another's window."""
    old = os.environ.get("RADVIEW_ANNOTATIONS_DIR")
    os.environ["RADVIEW_ANNOTATIONS_DIR"] = str(tmp_path_factory.mktemp("annotations"))
    yield
    if old is None:
        os.environ.pop("RADVIEW_ANNOTATIONS_DIR", None)
    else:
        os.environ["RADVIEW_ANNOTATIONS_DIR"] = old


class QThreadRegistry:
    """Every QThread constructed (or started) from Python while installed, held by weak references.

    Finding the threads left running walks these, not every object in the process (``gc.get_objects()`` did, and
    ``isinstance`` on all of them raised ~130 FutureWarnings from other libraries' objects on the way).
    ``QThread.__init__`` and ``QThread.start`` are wrapped, so ``QThread()``, a subclass's ``super().__init__()``
    and a thread handed over from C++ and started here are all seen.
    """

    def __init__(self):
        self._threads = weakref.WeakSet()
        self._saved = None

    def install(self):
        from PySide6.QtCore import QThread

        init, start = QThread.__init__, QThread.start
        threads = self._threads

        def tracked_init(thread, *args, **kwargs):
            init(thread, *args, **kwargs)
            threads.add(thread)

        def tracked_start(thread, *args, **kwargs):
            threads.add(thread)
            return start(thread, *args, **kwargs)

        QThread.__init__, QThread.start = tracked_init, tracked_start
        self._saved = (init, start)
        return self

    def uninstall(self):
        from PySide6.QtCore import QThread

        if self._saved is not None:
            QThread.__init__, QThread.start = self._saved
            self._saved = None

    def running(self) -> list:
        """The tracked QThreads that are running now."""
        out = []
        for thread in list(self._threads):
            try:
                if thread.isRunning():
                    out.append(thread)
            except RuntimeError:  # its C++ object is already deleted: not running
                pass
        return out

    def check(self) -> None:
        """Fail (AssertionError) when a tracked QThread is running."""
        running = self.running()
        names = ", ".join(repr(t.objectName() or type(t).__name__) for t in running)
        assert not running, f"{len(running)} QThread(s) left running after the test: {names}"


@pytest.fixture(scope="session")
def qthread_registry():
    registry = QThreadRegistry().install()
    yield registry
    registry.uninstall()


@pytest.fixture(autouse=True)
def no_qthread_left_running(qapp, qthread_registry):
    yield
    qapp.processEvents()
    gc.collect()  # as before: what only reference cycles still held is gone before the check
    qthread_registry.check()


@pytest.fixture(scope="session")
def demo_paths():
    from viewer.demo import ensure_demo

    return ensure_demo()


@pytest.fixture(scope="session")
def demo_volume(demo_paths):
    from viewer.io.dicom_index import scan
    from viewer.io.series_loader import load_series

    return load_series(scan(str(demo_paths.dicom_dir)).find(demo_paths.ct_series_uid))


@pytest.fixture(scope="session")
def demo_labels(demo_paths):
    from viewer.io.image_io import read_label_map

    return read_label_map(str(demo_paths.labels_nii))


@pytest.fixture
def new_window(qtbot, tmp_path):
    """``new_window(settings_name="settings.ini", size=(1500, 900))``: a shown main window with its own settings
    file and annotation folder in the test's temporary folder (pytest-qt closes it after the test)."""
    from PySide6.QtCore import QSettings

    from viewer.qt.main_window import MainWindow

    def make(settings_name: str = "settings.ini", size=(1500, 900)):
        w = MainWindow(QSettings(str(tmp_path / settings_name), QSettings.IniFormat),
                       annotation_dir=str(tmp_path / "annotations"))
        qtbot.addWidget(w)
        if size:
            w.resize(*size)
        w.show()
        qtbot.waitExposed(w)
        return w

    return make


@pytest.fixture
def demo_series_window(qtbot, new_window, demo_paths):
    """A main window with the demo's CT series opened from its DICOM folder, in the lung window."""
    w = new_window(size=(1400, 800))
    w.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    qtbot.waitUntil(lambda: w.session.volume is not None and not w.tasks._running, timeout=30000)
    w.session.apply_preset("lung")
    yield w
    w.close()
