"""Frames drawn off the GUI thread: the volume prepared in plain numpy, a scene's snapshot (``FrameSpec``) drawn by a
``MirrorScene`` on the frame thread as the scene itself draws it, the newest request winning, the thread answering
a synchronous request, stopping on ``close`` (a ``threading.Event``, then joined) and saying when it has no OpenGL.
Renders are small and few: llvmpipe is slow."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from radview_base.cancel import Cancelled
from radview_base.geometry import Geometry
from viewer.core.layers import LabelLayer
from viewer.io.volume import LabelMap, Volume

SIZE = (120, 96)


def ball_volume(n=32, spacing=2.0):
    g = Geometry((n, n, n), (spacing,) * 3, (-(n - 1) * spacing / 2,) * 3, np.eye(3))
    k, j, i = np.indices(g.shape_zyx)
    r = np.linalg.norm(g.index_to_world(np.stack([k, j, i], axis=-1).astype(float)), axis=-1)
    arr = np.where(r < 20, 1000, -1000).astype(np.int16)
    labels = np.zeros(g.shape_zyx, np.uint8)
    labels[(r < 12)] = 1
    return Volume(arr, g, {"modality": "CT"}), LabelMap(labels, g, {1: "lung_left"})


@pytest.fixture(scope="module")
def can_draw_frames():
    """An offscreen EGL context can be made here (asked of a child process: a broken driver may crash it)."""
    from viewer.render3d.frame_thread import probe_offscreen

    try:
        probe_offscreen()
    except RuntimeError as exc:
        pytest.skip(f"no offscreen OpenGL through EGL: {exc}")


def scene_with(volume, label_map, quality="full"):
    from viewer.render3d.input_window import InputWindow
    from viewer.render3d.label_surfaces import build_label_surfaces
    from viewer.render3d.scene import Scene3D
    from viewer.render3d.volume_prep import prepare_volume

    scene = Scene3D()
    window = InputWindow(SIZE)  # holds the renderers, never drawn: as the 3D view's own scene
    scene.attach(window.window)
    scene.set_quality(quality)
    scene.set_volume(prepare_volume(volume))
    scene.set_label_layer(LabelLayer(label_map), build_label_surfaces(label_map))
    scene.set_cursor((0.0, 0.0, 0.0))
    scene.set_camera("anterior")
    return scene, window


# --- the volume, prepared off the GUI thread ----------------------------------------------------------------
def test_prepare_volume_takes_the_range_and_an_interactive_copy():
    from viewer.render3d.volume_prep import prepare_volume, prepares_inline

    g = Geometry((20, 300, 300), (2.0, 0.8, 0.8), (0.0, 0.0, 0.0), np.eye(3))
    arr = np.arange(20 * 300 * 300, dtype=np.int32).reshape(g.shape_zyx) % 2000 - 1000
    volume = Volume(arr.astype(np.float64), g, {"modality": "CT"})  # float64: VTK takes float32
    prepared = prepare_volume(volume, max_size=128)
    full, full_geometry = prepared.array("full")
    small, small_geometry = prepared.array("interactive")
    assert full.dtype == np.float32 and full.flags.c_contiguous and full_geometry is g
    assert small.shape == (20, 100, 100) and np.allclose(small_geometry.spacing_zyx, (2.0, 2.4, 2.4))
    assert small.flags.c_contiguous and np.array_equal(small, full[:, ::3, ::3])
    lo, hi = prepared.value_range
    assert -1000 <= lo < -950 and 950 < hi <= 1000
    small_volume = Volume(np.zeros((8, 8, 8), np.int16), Geometry((8, 8, 8), (1.0,) * 3, (0.0,) * 3, np.eye(3)))
    tiny = prepare_volume(small_volume)
    assert tiny.array("interactive")[0] is tiny.array("full")[0] is small_volume.array  # no copy where none is due
    assert prepares_inline(small_volume) and not prepares_inline(Volume(np.zeros((160, 512, 512), np.int16),
                                                                        Geometry((160, 512, 512), (1.0,) * 3,
                                                                                 (0.0,) * 3, np.eye(3))))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        prepare_volume(volume, cancel=cancel)


# --- a snapshot drawn elsewhere draws what the scene shows ------------------------------------------------------
def test_a_mirror_draws_the_scenes_snapshot_as_the_scene_draws_itself(can_render, can_draw_frames):
    from viewer.render3d.frame_thread import egl_window
    from viewer.render3d.mirror import MirrorScene
    from viewer.render3d.offscreen import render_to_array

    volume, label_map = ball_volume()
    scene, window = scene_with(volume, label_map)
    scene.set_volume_visible(False)  # surfaces and cursor: no ray jitter between the two pictures
    spec = scene.frame_spec(7, SIZE)
    assert spec.signature() == scene.frame_spec(8, SIZE).signature()  # the job id aside, the same picture
    mirror = MirrorScene(egl_window())
    try:
        result = mirror.render(spec)
    finally:
        mirror.close()
        mirror.window.Finalize()
    assert result.job == 7 and result.quality == "full" and not result.error and result.ms > 0
    assert result.rgb.shape == (SIZE[1], SIZE[0], 3)
    scene.detach(window.window)
    direct = render_to_array(scene, SIZE)
    assert (result.rgb.max(axis=-1) > 40).sum() > 300  # the ball's surface, the cursor, the corner cube
    assert np.abs(result.rgb.astype(int) - direct.astype(int)).mean() < 2.0
    # a change of look changes the signature; the camera too
    scene.update_label_layer(scene.label_layers()[0])
    scene.label_actors(scene.label_layers()[0])[1].VisibilityOff()
    assert scene.frame_spec(9, SIZE).signature() != spec.signature()


# --- the frame thread --------------------------------------------------------------------------------------
def test_the_newest_request_wins_and_sync_requests_are_answered(can_draw_frames):
    from viewer.render3d.frame_thread import FrameThread

    volume, label_map = ball_volume()
    scene, _window = scene_with(volume, label_map, quality="interactive")
    frames, failures = [], []
    thread = FrameThread(frames.append, on_failed=failures.append).start()
    try:
        camera = scene.renderer.GetActiveCamera()
        specs = []
        for job in range(1, 9):  # eight camera moves while the first frame (shaders, upload) is drawn
            camera.Azimuth(10)
            specs.append(scene.frame_spec(job, SIZE))
            thread.submit(specs[-1])
        deadline = time.time() + 120
        while (not frames or frames[-1].job != 8) and time.time() < deadline:
            time.sleep(0.02)
        assert not failures and thread.ready.is_set() and thread.renderer
        jobs = [f.job for f in frames]
        assert jobs[-1] == 8 and jobs == sorted(jobs) and len(jobs) < 8  # superseded requests were never drawn
        assert frames[-1].signature == specs[-1].signature() and frames[-1].quality == "interactive"
        scene.set_quality("full")
        result = thread.render_sync(scene.frame_spec(9, SIZE), timeout=120)
        assert result is not None and result.job == 9 and result.quality == "full" and result.rgb.max() > 40
    finally:
        thread.close()
    assert not thread.alive
    assert thread.render_sync(scene.frame_spec(10, SIZE), timeout=1) is None  # closed: no answer, no wait


def test_a_thread_without_opengl_says_so_and_ends():
    from viewer.render3d.frame_thread import FrameThread

    def no_window():
        raise RuntimeError("no EGL here")

    failures, frames = [], []
    thread = FrameThread(frames.append, on_failed=failures.append, window_factory=no_window).start()
    assert thread.ready.wait(10)
    thread.close()
    assert failures and "no EGL here" in failures[0] and thread.failure and not thread.alive and not frames
