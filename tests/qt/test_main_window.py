"""The main window: opening studies (demo, broken folders, image files), background work, overlays, export."""
from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from PySide6.QtCore import QSettings

from viewer.qt.main_window import MainWindow


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


def wait_loaded(qtbot, window, timeout=30000):
    qtbot.waitUntil(lambda: window.session.volume is not None and not window.tasks._running, timeout=timeout)


def test_demo_opens_ready_to_read(window, qtbot, demo_paths):
    import json

    shown_first = []
    original = window.layout_widget.show_preview
    window.layout_widget.show_preview = lambda z, img: (shown_first.append(window.session.volume), original(z, img))
    window.open_demo()
    qtbot.waitUntil(lambda: window.session.preset_name == "lung", timeout=60000)
    s = window.session
    assert s.volume.meta["series_uid"] == demo_paths.ct_series_uid
    assert (s.width, s.level) == (1500, -600)
    # the axial view is at a slice through a nodule, the crosshair on it
    nodules = json.loads(open(demo_paths.nodules_json).read())
    axial = window.layout_widget.views["axial"]
    centres = [n["center_lps_mm"] for n in nodules]
    assert any(abs(axial.plane.from_world(c)[0] - axial.k) * 2.0 < n["diameter_mm"] / 2
               for c, n in zip(centres, nodules))
    assert min(np.linalg.norm(np.subtract(s.cursor_lps, c)) for c in centres) < 1.5
    assert window.layout_widget.active is axial
    # the first slice was shown while the series was still loading (before the volume existed)
    assert shown_first and shown_first[0] is None
    # the browser lists the three demo series
    assert {demo_paths.ct_series_uid, demo_paths.slab_series_uid} <= {
        e.key for e in window.opener.index.series} and window.browser.series_item(demo_paths.ct_series_uid) is not None
    assert window.recent.paths()[0] == str(demo_paths.dicom_dir)


def test_broken_folder_opens_readable_series_and_lists_what_was_skipped(window, qtbot, demo_paths, tmp_path):
    folder = tmp_path / "broken"
    shutil.copytree(demo_paths.dicom_dir / "ct_slab5", folder / "slab")
    victim = sorted((folder / "slab").iterdir())[5]
    victim.write_bytes(victim.read_bytes()[:700])  # truncated in the header
    (folder / "notes.txt").write_text("not an image")
    window.open_path(str(folder))
    wait_loaded(qtbot, window)
    assert window.session.volume.shape_zyx[0] >= 60  # the readable series opened (a gap at most)
    skipped = window.opener.index.skipped
    assert len(skipped) == 2 and all(s.reason for s in skipped)
    assert window.browser.skipped_panel.isVisible()
    texts = " ".join(window.browser.skipped_list.topLevelItem(i).text(1)
                     for i in range(window.browser.skipped_list.topLevelItemCount()))
    assert all(s.reason in texts for s in skipped)
    assert window.notices.skipped_label.text() == "2 files skipped" and window.notices.skipped_label.isVisible()


def test_closing_during_a_load_neither_hangs_nor_crashes(qtbot, tmp_path, demo_paths):
    w = MainWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.IniFormat))
    w.show()
    w.open_path(str(demo_paths.dicom_dir))
    qtbot.waitUntil(lambda: w.opener.load_job is not None or w.session.volume is not None, timeout=20000)
    t0 = time.perf_counter()
    w.close()
    assert time.perf_counter() - t0 < 5
    assert not w.tasks._running


def test_load_segmentation_overlays_and_refuses_another_grid(window, qtbot, demo_paths, tmp_path):
    from viewer.io.image_io import read_label_map, write_image

    window.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    wait_loaded(qtbot, window)
    window.load_segmentation(str(demo_paths.labels_nii))
    qtbot.waitUntil(lambda: len(window.session.layers) == 1, timeout=20000)
    layer = window.session.layers[0]
    assert layer.label_map.labels[2] == "lung_left"  # names from the labels.json sidecar
    assert len(window.layer_panel.blocks()) == 1
    # a label map of the 5 mm slab series does not fit the thin series: refused with a message, nothing lost
    lm = read_label_map(str(demo_paths.labels_nii))
    small = lm.array[::2]
    from radview_base.geometry import Geometry
    from viewer.io.volume import LabelMap
    g = lm.geometry
    other = write_image(LabelMap(small, Geometry(small.shape, (4.0, *g.spacing_zyx[1:]), g.origin_lps, g.direction)),
                        str(tmp_path / "other.nii.gz"))
    window.load_segmentation(other)
    qtbot.waitUntil(lambda: "was not loaded" in window.notices.last_message, timeout=20000)
    assert "grid" in window.notices.last_message or "geometry" in window.notices.last_message
    assert window.session.layers == [layer] and window.session.volume is not None


def test_export_screenshot_of_view_and_layout(window, qtbot, demo_paths, tmp_path):
    from PySide6.QtGui import QImage

    window.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    wait_loaded(qtbot, window)
    view_png = window.export_screenshot(str(tmp_path / "view.png"), "view")
    layout_png = window.export_screenshot(str(tmp_path / "layout.png"), "layout")
    view_img, layout_img = QImage(view_png), QImage(layout_png)
    axial = window.layout_widget.active
    assert (view_img.width(), view_img.height()) == (axial.width(), axial.height())
    assert layout_img.width() > view_img.width() * 2
    assert window.session.show_patient_data  # restored after the export hid it
    assert window.export_screenshot(str(tmp_path / "bad.tif"), "view") is None and "PNG or JPEG" in \
        window.notices.last_message


def test_page_down_steps_to_the_next_series(window, qtbot, demo_paths):
    window.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    wait_loaded(qtbot, window)
    keys = [e.key for e in window.opener.index.volumes() if e.loadable]
    i = keys.index(demo_paths.ct_series_uid)
    step = 1 if i + 1 < len(keys) else -1
    axial = window.layout_widget.views["axial"]
    axial.setFocus()
    from PySide6.QtCore import Qt
    qtbot.keyClick(axial, Qt.Key_PageDown if step == 1 else Qt.Key_PageUp)
    qtbot.waitUntil(lambda: window.session.volume is not None
                    and window.session.volume.meta["series_key"] == keys[i + step], timeout=20000)


def test_cancel_stops_the_worker(window, qtbot):
    import threading

    started = threading.Event()

    def slow(progress, cancel):
        from viewer.io.dicom_index import Cancelled

        started.set()
        for i in range(1000):
            if cancel.is_set():
                raise Cancelled("stop")
            progress(i, 1000, "")
            threading.Event().wait(0.01)
        return "done"

    results = []
    job = window.tasks.submit(slow, results.append, "slow task")
    qtbot.waitUntil(started.is_set, timeout=5000)
    window.tasks.cancel_current()
    qtbot.waitUntil(lambda: not window.tasks.is_running(job), timeout=5000)
    assert results == [] and window.notices.status_label.text() == "Cancelled"


def test_open_nifti_file(window, qtbot, tmp_path):
    from radview_base.geometry import Geometry
    from viewer.io.image_io import write_image
    from viewer.io.volume import Volume

    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    path = write_image(Volume(arr, Geometry((4, 5, 6), (2.0, 1.0, 0.5), (1, 2, 3))), str(tmp_path / "v.nii.gz"))
    window.open_path(path)
    wait_loaded(qtbot, window)
    assert np.array_equal(window.session.volume.array, arr)
    assert window.session.volume.geometry.spacing_zyx == (2.0, 1.0, 0.5)
    assert window.layout_widget.views["sagittal"].plane.n_slices == 6


def test_missing_path_is_reported(window):
    window.open_path("/no/such/folder")
    assert "does not exist" in window.notices.last_message and window.session.volume is None


def test_2x2_layout_opens_the_3d_view_and_exports_it(window, qtbot, demo_paths, tmp_path):
    from PySide6.QtGui import QImage

    from viewer.qt.views.view3d import vtk_widget_supported

    if not vtk_widget_supported():
        pytest.skip("VTK cannot draw in a widget under Qt's offscreen platform (run under Xvfb)")
    window.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    wait_loaded(qtbot, window)
    window.set_layout("2x2")
    assert window.view3d is not None and window.view3d in window.layout_widget.visible_panes()
    png = window.export_screenshot(str(tmp_path / "3d.png"), "3d")
    img = QImage(png)
    assert img.width() > 100 and not img.isNull()
    layout_png = window.export_screenshot(str(tmp_path / "layout.png"), "layout")
    assert QImage(layout_png).width() >= window.layout_widget.width() - 2
    window.set_layout("1x3")
    assert window.view3d not in window.layout_widget.visible_panes()


def test_legend_sets_per_label_3d_opacity_and_visibility(window, qtbot, demo_paths):
    from PySide6.QtCore import Qt

    window.open_path(str(demo_paths.dicom_dir), series=demo_paths.ct_series_uid)
    wait_loaded(qtbot, window)
    window.load_segmentation(str(demo_paths.labels_nii))
    qtbot.waitUntil(lambda: len(window.session.layers) == 1, timeout=20000)
    layer = window.session.layers[0]
    block = window.layer_panel.blocks()[0]
    assert layer.surface_opacity[1] == pytest.approx(0.15) and layer.surface_opacity[5] == 1.0  # body see-through
    changed = []
    window.session.layer_changed.connect(changed.append)
    block.surface_spins[5].setValue(40)
    assert layer.surface_opacity[5] == pytest.approx(0.4) and changed[-1] is layer
    heart = next(block.legend.topLevelItem(i) for i in range(block.legend.topLevelItemCount())
                 if block.legend.topLevelItem(i).data(0, Qt.UserRole) == 5)
    heart.setCheckState(0, Qt.Unchecked)
    assert 5 in layer.hidden_labels


def test_a_failed_load_leaves_no_loading_preview(window, qtbot):
    from viewer.logic.open_study import FirstSlice

    def failing(progress, cancel):
        progress.preview(FirstSlice(0, np.full((32, 32), 100, np.int16)))
        raise ValueError("pixel data unreadable")

    window.opener.start_load(failing, "Loading…")
    axial = window.layout_widget.views["axial"]
    qtbot.waitUntil(lambda: "pixel data unreadable" in window.notices.last_message, timeout=5000)
    assert window.session.volume is None
    assert not axial.previewing and axial.image_item.image is None


def test_a_dicom_seg_opened_alone_shows_on_its_own_grid(window, qtbot):
    """File → Open file… on a DICOM SEG: the loaders recognise it (in the job) and it opens as radview-cli opens it."""
    from reference import data_path

    from viewer.io.series_loader import load_path

    seg = str(data_path("seg-dcmqi", "liver.dcm"))
    window.open_path(seg)
    wait_loaded(qtbot, window)
    expected = load_path(seg)
    volume = window.session.volume
    assert volume.meta["modality"] == "SEG" and volume.meta["labels"] == {1: "Liver"}
    assert volume.geometry.is_close(expected.geometry) and np.array_equal(volume.array, expected.array)
    assert window.recent.paths()[0] == seg
