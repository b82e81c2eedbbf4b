"""Study browser (real widget, real DICOM) and the recent-studies list."""
from __future__ import annotations

import os
import re
import shutil

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMenu

from viewer.demo import ensure_demo
from viewer.io.dicom_header import read_header
from viewer.io.dicom_index import build_index, scan
from viewer.qt.panels.study_browser import COL_SERIES, COL_WARN, KEY_ROLE, SEG_ROLE, StudyBrowser
from viewer.qt.recent import RecentStudies


@pytest.fixture(scope="module")
def demo_paths():
    return ensure_demo()


@pytest.fixture(scope="module")
def demo_index(demo_paths):
    return scan(str(demo_paths.dicom_dir))


@pytest.fixture
def browser(qtbot):
    w = StudyBrowser()
    qtbot.addWidget(w)
    w.resize(420, 700)
    w.show()
    yield w
    w.shutdown()


def series_rows(browser):
    rows, stack = [], [browser.tree.invisibleRootItem()]
    while stack:
        item = stack.pop()
        stack.extend(item.child(i) for i in range(item.childCount()))
        if item.data(COL_SERIES, KEY_ROLE):
            rows.append(item)
    return rows


def image_count(row) -> int:
    """The count the row shows on its second line ("CT · 160 images")."""
    match = re.search(r"(\d+) images?$", row.text(COL_SERIES).splitlines()[1])
    assert match, row.text(COL_SERIES)
    return int(match.group(1))


def icon_image(item):
    return item.icon(COL_SERIES).pixmap(96, 96).toImage()


def test_set_index_lists_patient_study_and_three_series_with_counts(browser, demo_index):
    browser.set_index(demo_index)
    tree = browser.tree
    assert tree.topLevelItemCount() == 1
    patient = tree.topLevelItem(0)
    assert "Demo, Phantom" in patient.text(0) and "RADVIEW-DEMO" in patient.text(0)
    study = patient.child(0)
    assert "2024-03-15" in study.text(0) and "3 series" in study.text(0)
    rows = series_rows(browser)
    assert len(rows) == 3
    counts = {row.data(COL_SERIES, KEY_ROLE): image_count(row) for row in rows}
    assert counts == {s.key: s.n_images for s in demo_index.series}
    assert sorted(counts.values()) == [1, 64, 160]
    assert all(row.text(COL_SERIES).splitlines()[1].startswith("CT · ") for row in rows)
    thin = next(r for r in rows if "2.0 mm" in r.text(COL_SERIES))
    assert "512×512×160" in thin.text(COL_SERIES) and "0.75×0.75×2 mm" in thin.text(COL_SERIES)
    loc = next(r for r in rows if image_count(r) == 1)
    assert "(localizer)" in loc.text(COL_SERIES)
    assert all(r.icon(COL_WARN).isNull() for r in rows)  # the demo has no warnings
    assert not browser.skipped_panel.isVisible()
    assert "3 series" in browser.summary.text()


def test_thumbnails_arrive_off_the_gui_thread(browser, demo_index, qtbot):
    browser.set_index(demo_index)
    rows = series_rows(browser)
    pending = {r.data(COL_SERIES, KEY_ROLE): icon_image(r) for r in rows}
    qtbot.waitUntil(lambda: not browser.thumbnails_pending(), timeout=15000)
    for row in rows:
        assert not row.icon(COL_SERIES).isNull()
        image = icon_image(row)
        assert image != pending[row.data(COL_SERIES, KEY_ROLE)], "placeholder still shown"
    thin = next(r for r in rows if image_count(r) == 160)
    image = icon_image(thin)
    corner = image.pixelColor(3, 3).value()
    centre_column = max(image.pixelColor(48, y).value() for y in range(30, 66))
    assert corner < 20 and centre_column > 150  # black air corner, bright mediastinum


def test_clicking_a_series_row_emits_its_key(browser, demo_index, qtbot):
    browser.set_index(demo_index)
    row = next(r for r in series_rows(browser) if image_count(r) == 64)
    key = row.data(COL_SERIES, KEY_ROLE)
    rect = browser.tree.visualItemRect(row)
    assert rect.isValid()
    with qtbot.waitSignal(browser.series_activated, timeout=3000) as blocker:
        qtbot.mouseClick(browser.tree.viewport(), Qt.LeftButton, pos=rect.center())
    assert blocker.args == [key]
    assert browser.current_key() == key
    # clicking the study row (not a series) emits nothing
    with qtbot.assertNotEmitted(browser.series_activated, wait=100):
        study = row.parent()
        qtbot.mouseClick(browser.tree.viewport(), Qt.LeftButton, pos=browser.tree.visualItemRect(study).center())


def test_enter_activates_and_select_series_only_highlights(browser, demo_index, qtbot):
    browser.set_index(demo_index)
    keys = [s.key for s in demo_index.series]
    with qtbot.assertNotEmitted(browser.series_activated, wait=100):
        browser.select_series(keys[1])
    assert browser.current_key() == keys[1]
    assert browser.tree.currentItem().isSelected()
    browser.tree.setFocus()
    with qtbot.waitSignal(browser.series_activated, timeout=3000) as blocker:
        qtbot.keyClick(browser.tree, Qt.Key_Return)
    assert blocker.args == [keys[1]]


def test_broken_files_are_listed_in_the_skipped_section(browser, demo_paths, qtbot, tmp_path):
    sources = sorted((demo_paths.dicom_dir / "ct_thin").iterdir())
    for src in sources[:2]:
        shutil.copy(src, tmp_path)
    data = sources[5].read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "truncated.dcm").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("not an image\n")
    index = scan(str(tmp_path))
    assert len(index.series) == 1 and len(index.skipped) == 2
    browser.set_index(index)
    assert browser.skipped_panel.isVisible()
    assert browser.skipped_toggle.text() == "Skipped files (2)"
    rows = {browser.skipped_list.topLevelItem(i).text(0): browser.skipped_list.topLevelItem(i).text(1)
            for i in range(browser.skipped_list.topLevelItemCount())}
    assert set(rows) == {"notes.txt", os.path.join("sub", "truncated.dcm")}
    assert "truncated" in rows[os.path.join("sub", "truncated.dcm")]
    assert "not a DICOM file" in rows["notes.txt"]
    browser.skipped_toggle.click()  # collapsible
    assert not browser.skipped_list.isVisible() and browser.skipped_toggle.isVisible()
    assert image_count(series_rows(browser)[0]) == 2
    qtbot.waitUntil(lambda: not browser.thumbnails_pending(), timeout=15000)
    browser.set_index(scan(str(demo_paths.dicom_dir)))  # a clean study hides the section again
    assert not browser.skipped_panel.isVisible()


def test_refused_and_warned_series_show_their_reasons(browser, demo_paths, qtbot):
    sources = sorted((demo_paths.dicom_dir / "ct_thin").iterdir())
    images = [read_header(str(p)) for p in (sources[0], sources[1], sources[2], sources[6])]  # a gap of 3
    refused = [read_header(str(p)) for p in sorted((demo_paths.dicom_dir / "ct_slab5").iterdir())[:3]]
    for img in refused:
        img.bits_allocated = 1
    index = build_index(str(demo_paths.dicom_dir), images + refused, [], len(images) + len(refused))
    browser.set_index(index)
    rows = {r.data(COL_SERIES, KEY_ROLE): r for r in series_rows(browser)}
    bad = next(s for s in index.series if s.refusal)
    gappy = next(s for s in index.series if not s.refusal)
    assert gappy.warnings, "expected a warning about the missing slices"
    bad_row, gappy_row = rows[bad.key], rows[gappy.key]
    assert not bad_row.icon(COL_WARN).isNull() and bad.refusal in bad_row.toolTip(COL_WARN)
    assert "not loadable" in bad_row.text(COL_SERIES) and bad.refusal in bad_row.toolTip(COL_SERIES)
    assert bad_row.foreground(COL_SERIES).color() != gappy_row.foreground(COL_SERIES).color()
    assert bad_row.font(COL_SERIES).italic() and not gappy_row.font(COL_SERIES).italic()
    assert not gappy_row.icon(COL_WARN).isNull() and gappy.warnings[0] in gappy_row.toolTip(COL_WARN)
    # a refused series stays clickable so the caller can report why it does not load
    with qtbot.waitSignal(browser.series_activated, timeout=3000) as blocker:
        qtbot.mouseClick(browser.tree.viewport(), Qt.LeftButton, pos=browser.tree.visualItemRect(bad_row).center())
    assert blocker.args == [bad.key]


def test_unreadable_pixels_get_a_placeholder_with_the_reason(browser, demo_paths, qtbot, tmp_path):
    for src in sorted((demo_paths.dicom_dir / "ct_thin").iterdir())[:3]:
        shutil.copy(src, tmp_path)
    index = scan(str(tmp_path))
    for path in tmp_path.iterdir():  # truncated after the scan: the index is fine, the pixels are not
        path.write_bytes(path.read_bytes()[:4000])
    browser.set_index(index)
    (row,) = series_rows(browser)
    qtbot.waitUntil(lambda: not browser.thumbnails_pending(), timeout=15000)
    assert "No preview" in row.toolTip(COL_SERIES) and "truncated" in row.toolTip(COL_SERIES)
    assert icon_image(row) == browser._failed_icon.pixmap(96, 96).toImage()


def test_clear_and_replacing_the_index_cancel_the_thumbnail_job(browser, demo_index, qtbot):
    browser.set_index(demo_index)
    assert browser.thumbnails_pending()
    browser.clear()
    assert not browser.thumbnails_pending()
    assert browser.tree.topLevelItemCount() == 0 and browser.current_key() is None
    browser.set_index(demo_index)
    browser.set_index(demo_index)  # superseded job: its results are dropped, the new one fills the icons
    qtbot.waitUntil(lambda: not browser.thumbnails_pending(), timeout=15000)
    assert len(series_rows(browser)) == 3


def test_seg_files_are_rows_under_the_series_they_were_made_on(browser, qtbot):
    from reference import data_path

    from viewer.io import loaders

    root = data_path("seg-dcmqi")
    index = loaders.load(loaders.examine(str(root))[0])
    browser.set_index(index)
    ct = next(e for e in index.series if e.files[0].endswith(os.path.join("ct-3slice", "01.dcm")))
    ct_row = browser.series_item(ct.key)
    children = {ct_row.child(i).data(COL_SERIES, SEG_ROLE): ct_row.child(i) for i in range(ct_row.childCount())}
    assert {os.path.basename(p) for p in children} == {"liver.dcm", "partial_overlaps.dcm"}
    liver = next(row for p, row in children.items() if p.endswith("liver.dcm"))
    assert liver.text(COL_SERIES).splitlines() == ["SEG: Liver Segmentation", "Liver"]
    overlaps = next(row for p, row in children.items() if p.endswith("partial_overlaps.dcm"))
    assert overlaps.text(COL_SERIES).splitlines()[1] == "GREEN, ORANGE, PURPLE, LIGHT_BLUE, DARK_BLUE"
    swatches = overlaps.icon(COL_SERIES).pixmap(200, 200).toImage()
    assert swatches.width() < 120 and swatches.height() < 24  # small squares, not a 96 px thumbnail
    green = swatches.pixelColor(7, 7)
    assert (green.red(), green.green(), green.blue()) == (128, 174, 128)  # GREEN's recommended colour
    assert "1: GREEN" in overlaps.toolTip(COL_SERIES)
    # SEG rows are not series rows: the series count and the series keys are unchanged
    assert len(series_rows(browser)) == len(index.series)
    assert all(not row.data(COL_SERIES, KEY_ROLE) for row in children.values())
    browser.tree.scrollToItem(liver)
    rect = browser.tree.visualItemRect(liver)
    with qtbot.assertNotEmitted(browser.series_activated, wait=100):
        with qtbot.waitSignal(browser.segmentation_activated, timeout=3000) as blocker:
            qtbot.mouseClick(browser.tree.viewport(), Qt.LeftButton, pos=rect.center())
    assert blocker.args == [ct.key, str(root / "liver.dcm")]
    assert f"{len(index.segmentations)} segmentations" in browser.summary.text()
    if os.environ.get("RADVIEW_TEST_SHOTS"):
        browser.grab().save(os.path.join(os.environ["RADVIEW_TEST_SHOTS"], "browser_segs.png"))


def test_a_4d_series_row_says_its_time_points_and_what_varies(browser, demo_index, tmp_path, qtbot):
    """From the headers the index read (the files may be gone): the count, the attribute and its range."""
    from four_d_cases import write_4d_series

    from viewer.qt.panels.study_browser import series_time

    def dwi(ds, t, _z):  # b-values only in GE's private tag (0043,xx39)
        ds.SeriesDescription = "DWI"
        ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x39, "IS", [(0, 500, 1000)[t], 8, 0, 0])

    write_4d_series(tmp_path / "dwi", n_t=3, n_z=3, size=8, varies="", extra=dwi)
    write_4d_series(tmp_path / "cine", n_t=17, n_z=2, size=8, varies="trigger time", trigger_ms=50.0)
    write_4d_series(tmp_path / "dce", n_t=4, n_z=3, size=8)
    index = scan(str(tmp_path))
    browser.set_index(index)
    expected = {"DWI": "4D: 3 time points (b-value 0–1000 s/mm²)",
                "4D trigger time": "4D: 17 time points (trigger time 0–800 ms)",
                "4D temporal position": "4D: 4 time points (temporal position)"}
    rows = {entry.description: browser.series_item(entry.key) for entry in index.series}
    assert set(rows) == set(expected)
    for description, text in expected.items():
        count, varies = text.removesuffix(")").split(" (")
        assert rows[description].text(COL_SERIES).splitlines()[-2:] == [count, varies]  # (the panel is narrow)
        assert text in rows[description].toolTip(COL_SERIES)
    qtbot.waitUntil(lambda: not browser.thumbnails_pending(), timeout=20000)
    if os.environ.get("RADVIEW_TEST_SHOTS"):
        browser.resize(300, 560)
        browser.grab().save(os.path.join(os.environ["RADVIEW_TEST_SHOTS"], "browser_4d.png"))
    shutil.rmtree(tmp_path / "dwi")  # header only: what the row says needs no file, let alone pixels
    (dwi_entry,) = (e for e in index.series if e.description == "DWI")
    assert series_time(dwi_entry) == expected["DWI"]
    assert [series_time(e) for e in demo_index.series] == ["", "", ""]  # 3D CT, localizer


# --- recent studies ------------------------------------------------------------------
@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "r.ini"), QSettings.IniFormat)


def test_recent_add_moves_to_front_and_dedups(settings, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    recent = RecentStudies(settings)
    assert recent.paths() == []
    recent.add(a)
    assert recent.paths() == [str(a)]  # one entry survives the INI round trip as a list
    recent.add(b)
    recent.add(str(a) + os.sep + ".")  # the same folder spelled differently
    assert recent.paths() == [str(a), str(b)]
    reread = RecentStudies(QSettings(str(tmp_path / "r.ini"), QSettings.IniFormat))
    assert reread.paths() == [str(a), str(b)]
    shutil.rmtree(b)
    assert reread.paths() == [str(a)]  # only existing paths
    reread.clear()
    assert RecentStudies(QSettings(str(tmp_path / "r.ini"), QSettings.IniFormat)).paths() == []


def test_recent_keeps_the_ten_newest(settings, tmp_path):
    recent = RecentStudies(settings)
    folders = []
    for i in range(13):
        folder = tmp_path / f"study{i:02d}"
        folder.mkdir()
        folders.append(str(folder))
        recent.add(folder)
    assert recent.paths() == folders[::-1][:10]


def test_recent_menu_opens_the_chosen_path(settings, tmp_path, qtbot):
    first, second = tmp_path / "first & co", tmp_path / "second"
    first.mkdir(), second.mkdir()
    recent = RecentStudies(settings)
    menu = QMenu()
    opened = []
    recent.populate_menu(menu, opened.append)
    assert menu.title() == "Recent studies"
    assert [a.isEnabled() for a in menu.actions() if not a.isSeparator()] == [False, False]  # placeholder, Clear
    recent.add(first)
    recent.add(second)
    recent.populate_menu(menu, opened.append)
    actions = [a for a in menu.actions() if not a.isSeparator()]
    assert len(actions) == 3  # second, first, Clear
    assert actions[0].text().startswith("&1 second") and "first && co" in actions[1].text()
    actions[1].trigger()
    assert opened == [str(first)]
    actions[2].trigger()  # Clear
    assert recent.paths() == []
