"""Series thumbnails: middle frame, rescale + window, physical aspect, readable errors."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from viewer.demo import ensure_demo
from viewer.io.dicom_index import SeriesEntry, scan
from viewer.io.thumbnail import ThumbnailError, area_resize, middle_frame, series_thumbnail, thumbnail_shape


@pytest.fixture(scope="module")
def demo():
    paths = ensure_demo()
    index = scan(str(paths.dicom_dir))
    by_uid = {s.series_uid: s for s in index.series}
    return paths, index, by_uid


def _single_frame_entry(entry: SeriesEntry, **file_changes) -> SeriesEntry:
    """A plan-less copy of ``entry`` holding only its middle frame, on a copy of the file with ``file_changes``."""
    fr = middle_frame(entry)
    f = dataclasses.replace(fr.file, frames=[], **file_changes)
    frame = dataclasses.replace(fr, file=f)
    f.frames.append(frame)
    return dataclasses.replace(entry, frames=[frame], plan=None, key=entry.key + "#copy")


def test_every_demo_series_gives_a_uint8_thumbnail_with_longest_side_size(demo):
    _, index, _ = demo
    assert len(index.series) == 3
    for entry in index.series:
        for size in (96, 40):
            thumb = series_thumbnail(entry, size)
            assert thumb.dtype == np.uint8 and thumb.ndim == 2
            assert max(thumb.shape) == size


def test_aspect_follows_physical_size(demo):
    paths, _, by_uid = demo
    loc = by_uid[paths.localizer_series_uid]
    f = loc.frames[0].file
    assert (f.rows, f.columns) == (425, 512)
    assert series_thumbnail(loc, 96).shape == (80, 96)  # 425/512 * 96 = 79.7
    # the same pixels with rows twice as far apart are twice as tall as wide
    ct = by_uid[paths.ct_series_uid]
    tall = _single_frame_entry(ct)
    tall.frames[0].pixel_spacing = (1.5, 0.75)
    assert series_thumbnail(tall, 96).shape == (96, 48)
    assert thumbnail_shape(100, 300, None, 60) == (20, 60)
    assert thumbnail_shape(64, 64, (0.5, 0.5), 96) == (96, 96)  # small images grow to the size


def test_ct_thumbnail_shows_a_body_brighter_than_the_air_corners(demo):
    paths, _, by_uid = demo
    thumb = series_thumbnail(by_uid[paths.ct_series_uid], 96).astype(float)
    assert thumb.std() > 20, "thumbnail is (nearly) constant"
    corners = np.concatenate([thumb[:8, :8].ravel(), thumb[:8, -8:].ravel(), thumb[-8:, :8].ravel(),
                              thumb[-8:, -8:].ravel()])
    mediastinum = thumb[36:60, 42:62]  # soft tissue between the (dark) lungs
    assert corners.mean() < 10
    assert mediastinum.mean() > corners.mean() + 80
    assert (thumb[:, 48] > 100).any() and thumb[0, 48] < 10  # a vertical profile enters the body from air


def test_middle_frame_is_the_middle_slice_of_the_first_time_point(demo):
    paths, _, by_uid = demo
    ct = by_uid[paths.ct_series_uid]
    stack = ct.plan.frames[0]
    z = sorted(fr.position[2] for fr in stack)
    assert middle_frame(ct) is stack[len(stack) // 2]
    assert middle_frame(ct).position[2] == pytest.approx(z[len(z) // 2], abs=ct.spacing_zyx[0])


def test_file_window_is_used_and_percentile_range_without_one(demo):
    paths, _, by_uid = demo
    ct = by_uid[paths.ct_series_uid]
    assert middle_frame(ct).file.window == (40.0, 400.0)
    soft = series_thumbnail(_single_frame_entry(ct), 96)
    assert np.array_equal(soft, series_thumbnail(ct, 96))
    narrow = series_thumbnail(_single_frame_entry(ct, window=(-500.0, 2.0)), 96)
    assert np.isin(narrow, (0, 255)).mean() > 0.9  # a 2 HU window is (almost) binary
    robust = series_thumbnail(_single_frame_entry(ct, window=None), 96)
    assert robust.std() > 20 and not np.array_equal(robust, soft)
    assert robust[:8, :8].mean() < 10  # air is the darkest 1 %: black


def test_monochrome1_is_inverted(demo):
    paths, _, by_uid = demo
    ct = by_uid[paths.ct_series_uid]
    normal = series_thumbnail(_single_frame_entry(ct), 64)
    inverted = series_thumbnail(_single_frame_entry(ct, photometric="MONOCHROME1"), 64)
    assert np.array_equal(inverted, 255 - normal)


def test_undecodable_pixels_raise_a_readable_error(demo, tmp_path):
    paths, _, _ = demo
    src = sorted((paths.dicom_dir / "ct_thin").iterdir())[0]
    target = tmp_path / "slice.dcm"
    shutil.copy(src, target)
    (entry,) = scan(str(tmp_path)).series
    target.write_bytes(target.read_bytes()[:2000])  # truncated after the scan
    with pytest.raises(ThumbnailError, match="truncated"):
        series_thumbnail(entry)
    entry.frames[0].file.bits_allocated = 12  # no stored dtype for 12-bit allocation
    with pytest.raises(ThumbnailError, match="BitsAllocated 12"):
        series_thumbnail(entry)


def test_area_resize_averages_blocks_and_repeats_when_growing():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    assert np.array_equal(area_resize(a, (2, 2)), [[2.5, 4.5], [10.5, 12.5]])
    assert np.array_equal(area_resize(np.array([[1.0, 2.0]]), (2, 4)), [[1, 1, 2, 2], [1, 1, 2, 2]])
    rgb = np.zeros((4, 4, 3), np.float32)
    rgb[..., 0] = 100
    assert area_resize(rgb, (2, 2)).shape == (2, 2, 3)
