"""Scene3D renders what is where it should be: checked on pixels of small offscreen renders.

Expected screen positions come from the renderer's own world→display transform
(``Scene3D.world_to_display``) of LPS points computed from the geometry, so the checks hold for any
camera fit; the orientation checks (anterior view: the patient's left on the screen's right) are
stated separately in first principles. Renders are small (≤ 192 px) and few: llvmpipe is slow.
"""
from __future__ import annotations

import numpy as np
import pytest

from radview_base.geometry import Geometry
from viewer.core.layers import LabelLayer
from viewer.io.volume import LabelMap, Volume


# --- synthetic data ------------------------------------------------------------------------------
def rotation(axis, degrees) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    t = np.radians(degrees)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def balls(geometry: Geometry, centers_lps, radius_mm, values, background=0, dtype=np.int16) -> np.ndarray:
    """An array on ``geometry`` with a ball of ``values[n]`` around each LPS centre."""
    k, j, i = np.indices(geometry.shape_zyx)
    world = geometry.index_to_world(np.stack([k, j, i], axis=-1).astype(float))
    out = np.full(geometry.shape_zyx, background, dtype=dtype)
    for c, v in zip(centers_lps, values):
        out[np.linalg.norm(world - np.asarray(c, float), axis=-1) <= radius_mm] = v
    return out


def ct(array, geometry) -> Volume:
    return Volume(array, geometry, {"modality": "CT"})


def cube_geometry(n=40, spacing=1.5, origin=None, direction=None) -> Geometry:
    """An n³ grid centred on LPS (0, 0, 0) unless an origin is given."""
    if origin is None:
        origin = tuple(-(n - 1) * spacing / 2 for _ in range(3))
    return Geometry((n, n, n), (spacing,) * 3, origin, np.eye(3) if direction is None else direction)


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float).mean(axis=-1)


def bright_centroid(rgb: np.ndarray, threshold=128.0, region=None):
    """(x, y) in VTK display pixels (bottom-left origin) of the pixels brighter than ``threshold``."""
    lum = luminance(rgb)
    if region is not None:
        lum = np.where(region, lum, 0)
    rows, cols = np.nonzero(lum > threshold)
    assert rows.size, "nothing bright in the image"
    h = rgb.shape[0]
    return float(cols.mean()), float(h - 1 - rows.mean())


def pixel(rgb: np.ndarray, display_xy) -> np.ndarray:
    """The RGB at a display position (bottom-left origin) of a top-row-first image."""
    x, y = display_xy
    return rgb[rgb.shape[0] - 1 - int(round(y)), int(round(x))].astype(float)


@pytest.fixture
def scene_window(can_render):
    from viewer.render3d.offscreen import OffscreenWindow
    from viewer.render3d.scene import Scene3D

    made = []

    def make(size=(160, 160), marker=False, **kw):
        scene = Scene3D(**kw)
        scene.set_orientation_marker_visible(marker)  # its letters would count as bright pixels
        window = OffscreenWindow(scene, size)
        made.append((scene, window))
        return scene, window

    yield make
    for scene, window in made:
        scene.close()
        window.close()


# --- (a) MIP: a bright ball off-centre shows as a disc where it projects -------------------------
def test_mip_shows_an_off_centre_ball_where_it_projects(scene_window):
    g = cube_geometry()
    c = (12.0, -6.0, 15.0)  # patient left, a little anterior, superior
    vol = ct(balls(g, [c], 6.0, [1000], background=-1000), g)
    scene, window = scene_window()
    scene.set_volume(vol, preset="ct_mip")
    scene.set_camera("anterior")
    img = window.render()
    expected = scene.world_to_display(c)
    assert luminance(pixel(img, expected)[None])[0] > 200
    cx, cy = bright_centroid(img)
    assert abs(cx - expected[0]) < 2.5 and abs(cy - expected[1]) < 2.5
    # anterior view: the patient's left (+x) is right of the centre, superior (+z) above it
    centre = scene.world_to_display((0.0, 0.0, 0.0))
    assert cx > centre[0] + 5 and cy > centre[1] + 5
    mirrored = (2 * centre[0] - expected[0], expected[1])
    assert luminance(pixel(img, mirrored)[None])[0] < 30
    corner = luminance(img[-25:, :25]).max()
    scene.set_orientation_marker_visible(True)  # the orientation cube is drawn in the bottom-left corner
    img = window.render()
    assert luminance(img[-25:, :25]).max() > corner + 60


# --- (b) bone preset: a "bone" rod at +1000 HU shows, the 40 HU tissue around it does not ---------
def test_bone_preset_shows_bone_and_hides_soft_tissue(scene_window):
    g = cube_geometry(n=48, spacing=1.0)
    k, j, i = np.indices(g.shape_zyx)
    world = g.index_to_world(np.stack([k, j, i], -1).astype(float))
    r_body = np.hypot(world[..., 0], world[..., 1])
    r_rod = np.hypot(world[..., 0] - 8.0, world[..., 1] - 6.0)  # rod behind and left of the centre, along z
    arr = np.where(r_body < 21, 40, -1000).astype(np.int16)
    arr[r_rod < 4] = 1000
    scene, window = scene_window()
    scene.set_volume(ct(arr, g))  # CT default preset: bone
    assert scene.preset.name == "ct_bone" and scene.preset.blend == "composite"
    scene.set_camera("anterior")
    img = window.render()
    rod = scene.world_to_display((8.0, 6.0, 0.0))
    tissue = scene.world_to_display((-10.0, 0.0, 0.0))
    assert luminance(pixel(img, rod)[None])[0] > 80
    assert luminance(pixel(img, tissue)[None])[0] < 20
    assert rod[0] > scene.world_to_display((0.0, 0.0, 0.0))[0]  # the patient's left on the screen's right

    # soft-tissue preset: now the tissue cylinder is what one sees
    scene.set_preset("ct_soft_tissue")
    img = window.render()
    assert luminance(pixel(img, tissue)[None])[0] > 40


# --- (c) label surfaces in their colours, on the right side ----------------------------------------
def lungs_layer():
    g = Geometry((24, 24, 48), (2.0, 2.0, 2.0), (-47.0, -23.0, -23.0))
    left, right = (22.0, 0.0, 0.0), (-22.0, 0.0, 0.0)  # LPS: +x is the patient's left
    arr = balls(g, [left, right], 12.0, [2, 3], background=0, dtype=np.uint8)
    lm = LabelMap(arr, g, {2: "lung_left", 3: "lung_right"})
    return LabelLayer(lm), left, right


def mean_colour(img, mask):
    px = img[mask & (luminance(img) > 25)]
    assert len(px) > 30
    return px.astype(float).mean(axis=0)


def test_label_surfaces_in_label_colours_patient_left_on_screen_right(scene_window):
    layer, left, right = lungs_layer()
    assert layer.colors[2][2] > layer.colors[2][1] and layer.colors[3][1] > layer.colors[3][2]  # blue / green
    scene, window = scene_window(size=(192, 128))
    scene.set_label_layer(layer)  # builds the surfaces itself
    scene.set_camera("anterior")
    img = window.render()
    screen_right = np.zeros(img.shape[:2], bool)
    screen_right[:, img.shape[1] // 2:] = True
    r, g_, b = mean_colour(img, screen_right)
    assert b > g_ + 10, f"lung_left (blue) should be on the screen's right in the anterior view, got {r, g_, b}"
    r, g_, b = mean_colour(img, ~screen_right)
    assert g_ > b + 10, f"lung_right (green) should be on the screen's left, got {r, g_, b}"
    assert scene.world_to_display(left)[0] > scene.world_to_display(right)[0]

    scene.set_camera("posterior")  # seen from behind: swapped
    img = window.render()
    assert mean_colour(img, screen_right)[1] > mean_colour(img, screen_right)[2] + 10

    scene.set_label_visible(layer, 2, False)  # hides lung_left (shared with the 2D views)
    assert 2 in layer.hidden_labels
    img = window.render()
    assert luminance(img[:, : img.shape[1] // 2][20:-20, 30:]).max() < 25  # posterior: the left lung was here


# --- (d) camera presets ------------------------------------------------------------------------------
@pytest.mark.parametrize("view", ["anterior", "posterior", "left", "right", "superior", "inferior"])
def test_camera_presets_look_from_the_named_side(scene_window, view):
    from viewer.render3d.camera_views import VIEWS, screen_right

    g = cube_geometry(n=8, spacing=10.0)
    scene, window = scene_window(size=(100, 100))
    scene.set_volume(ct(np.zeros(g.shape_zyx, np.int16), g))
    scene.set_camera(view)
    cam = scene.renderer.GetActiveCamera()
    look, up = VIEWS[view]
    assert np.allclose(cam.GetDirectionOfProjection(), look, atol=1e-6)
    assert np.allclose(cam.GetViewUp(), up, atol=1e-6)
    assert np.allclose(cam.GetFocalPoint(), (0, 0, 0), atol=1e-6)
    centre = np.array(scene.world_to_display((0, 0, 0)))
    right = np.array(scene.world_to_display(20 * screen_right(view))) - centre
    top = np.array(scene.world_to_display(20 * np.asarray(up))) - centre
    assert right[0] > 5 and abs(right[1]) < 1e-6 + 0.5
    assert top[1] > 5 and abs(top[0]) < 0.5
    expected_right = {"anterior": (1, 0, 0), "posterior": (-1, 0, 0), "left": (0, 1, 0), "right": (0, -1, 0),
                      "superior": (-1, 0, 0), "inferior": (1, 0, 0)}[view]
    assert np.allclose(screen_right(view), expected_right)


# --- (e) geometry: an oblique, shifted (and a left-handed) grid puts the ball at its LPS place -------
def test_oriented_volumes_render_at_their_lps_position(scene_window):
    scene, window = scene_window()
    # one scene, right- then left-handed (a GPU mapper whose prop matrix alone turns into a reflection
    # draws nothing: see viewer/render3d/image_data.py)
    for handed in (1.0, -1.0):
        d = rotation((1, 2, 3), 35.0) @ np.diag([1.0, 1.0, handed])
        g = Geometry((36, 40, 44), (2.0, 1.5, 1.25), (30.0, -20.0, 100.0), d)
        c = g.index_to_world((24, 12, 30))
        vol = ct(balls(g, [c], 6.0, [1000], background=-1000), g)
        scene.set_volume(vol, preset="ct_mip")
        scene.set_camera("anterior")
        img = window.render()
        expected = scene.world_to_display(c)
        cx, cy = bright_centroid(img)
        assert abs(cx - expected[0]) < 2.5 and abs(cy - expected[1]) < 2.5, f"handedness {handed}"
        # the volume pick finds the ball's front (anterior, −y) surface
        scene.set_preset("ct_bone")
        window.render()
        picked = scene.pick(*expected)
        assert picked is not None
        assert np.linalg.norm(picked - (c - np.array([0.0, 6.0, 0.0]))) < 2.5


# --- (f) pick on a surface -------------------------------------------------------------------------
def test_pick_returns_the_lps_point_on_a_label_surface(scene_window):
    g = Geometry((30, 30, 30), (1.5, 1.5, 1.5), (-20.0, -25.0, 40.0), rotation((0, 0, 1), 20.0))
    c = g.index_to_world((15, 14, 16))
    lm = LabelMap(balls(g, [c], 8.0, [1], dtype=np.uint8), g, {1: "nodule"})
    layer = LabelLayer(lm)
    scene, window = scene_window(size=(128, 128))
    scene.set_label_layer(layer)
    scene.set_camera("anterior")
    window.render()
    picked = scene.pick(*scene.world_to_display(c))
    assert picked is not None
    assert np.linalg.norm(picked - (c - np.array([0.0, 8.0, 0.0]))) < 1.0  # the front (anterior) surface
    scene.set_camera("left")
    window.render()
    picked = scene.pick(*scene.world_to_display(c))
    assert np.linalg.norm(picked - (c + np.array([8.0, 0.0, 0.0]))) < 1.0  # seen from the left: +x side
    assert scene.pick(2, 2) is None  # background


def test_pick_in_a_mip_finds_the_brightest_voxel_along_the_ray(scene_window):
    g = cube_geometry(n=40, spacing=1.5)
    c = np.array([6.0, 4.0, -5.0])
    k, j, i = np.indices(g.shape_zyx)
    world = g.index_to_world(np.stack([k, j, i], -1).astype(float))
    arr = (1200 * np.exp(-np.sum((world - c) ** 2, axis=-1) / (2 * 5.0 ** 2)) - 1000).astype(np.int16)
    scene, window = scene_window(size=(128, 128))
    scene.set_volume(ct(arr, g), preset="ct_mip")
    scene.set_camera("right")
    window.render()
    picked = scene.pick(*scene.world_to_display(c))
    assert picked is not None and np.linalg.norm(picked - c) < 1.5  # the peak, not the volume's entry point
    scene.set_crop_box((-30.0, 0.0, -30.0, 30.0, -30.0, 30.0))  # the peak is cropped away: the ray's best is x = 0
    picked = scene.pick(*scene.world_to_display(c))
    assert picked is not None and -1.7 < picked[0] <= 0.0  # within the last voxel (1.5 mm) before the box's face


# --- crop box, quality, cursor, capture ----------------------------------------------------------------
def test_crop_box_hides_the_volume_outside_it(scene_window):
    g = cube_geometry()
    a, b = (-14.0, 0.0, 0.0), (14.0, 0.0, 0.0)
    vol = ct(balls(g, [a, b], 5.0, [1000, 1000], background=-1000), g)
    scene, window = scene_window(size=(128, 128))
    scene.set_volume(vol, preset="ct_mip")
    scene.set_camera("anterior")
    scene.set_crop_box((-40.0, 0.0, -40.0, 40.0, -40.0, 40.0))  # keep the patient's right half
    img = window.render()
    assert luminance(pixel(img, scene.world_to_display(a))[None])[0] > 200
    assert luminance(pixel(img, scene.world_to_display(b))[None])[0] < 30
    scene.set_crop_box(None)
    img = window.render()
    assert luminance(pixel(img, scene.world_to_display(b))[None])[0] > 200


def test_interactive_quality_renders_a_downsampled_copy_in_the_same_place(scene_window):
    g = cube_geometry(n=48, spacing=1.0)
    c = (-8.0, 3.0, -10.0)
    vol = ct(balls(g, [c], 6.0, [1000], background=-1000), g)
    scene, window = scene_window(size=(128, 128), interactive_max_size=24)
    scene.set_volume(vol, preset="ct_mip")
    scene.set_camera("anterior")
    scene.set_quality("interactive")
    dims = scene.volume_prop.GetMapper().GetInput().GetDimensions()
    assert dims == (24, 24, 24)
    img = window.render()
    expected = scene.world_to_display(c)
    cx, cy = bright_centroid(img)
    assert abs(cx - expected[0]) < 3 and abs(cy - expected[1]) < 3
    scene.set_quality("full")
    assert scene.volume_prop.GetMapper().GetInput().GetDimensions() == (48, 48, 48)
    with pytest.raises(ValueError):
        scene.set_quality("best")


def test_cursor_outlines_the_three_planes_through_the_point(can_render):
    from viewer.render3d.scene import Scene3D

    g = cube_geometry(n=20, spacing=2.0)
    scene = Scene3D()
    scene.set_volume(ct(np.zeros(g.shape_zyx, np.int16), g))
    p = np.array([4.0, -6.0, 10.0])
    scene.set_cursor(p)
    outlines = scene.cursor.outlines
    assert all(a.GetVisibility() for a in scene.cursor.actors)
    from vtkmodules.util.numpy_support import vtk_to_numpy

    def points(plane):
        return vtk_to_numpy(outlines[plane].GetMapper().GetInput().GetPoints().GetData())

    assert np.allclose(points("axial")[:, 2], p[2]) and np.allclose(points("coronal")[:, 1], p[1])
    assert np.allclose(points("sagittal")[:, 0], p[0])
    assert np.allclose(points("axial")[:, 0].min(), g.origin_lps[0] - 1.0)  # the volume's outer face
    scene.set_cursor(None)
    assert not any(a.GetVisibility() for a in scene.cursor.actors)


def test_render_to_array_is_top_row_first_with_the_asked_size(can_render):
    from viewer.render3d.offscreen import render_to_array
    from viewer.render3d.scene import Scene3D

    g = cube_geometry(n=32, spacing=2.0)
    vol = ct(balls(g, [(0.0, 0.0, 20.0)], 6.0, [1000], background=-1000), g)  # superior ball
    scene = Scene3D()
    scene.set_volume(vol, preset="ct_mip")
    scene.set_camera("anterior")
    img = render_to_array(scene, size=(160, 120))
    assert img.shape == (120, 160, 3) and img.dtype == np.uint8
    rows = np.nonzero(luminance(img) > 128)[0]
    assert rows.size and rows.mean() < 60  # superior is up: in the top half of the array
    # the marker renderer follows the scene camera
    assert np.allclose(scene.marker.renderer.GetActiveCamera().GetDirectionOfProjection(),
                       scene.renderer.GetActiveCamera().GetDirectionOfProjection())


def test_cpu_ray_caster_draws_the_same_place(scene_window):
    g = Geometry((30, 32, 34), (2.0, 1.5, 1.5), (-20.0, 10.0, -5.0), rotation((0, 1, 1), 40.0))
    c = g.index_to_world((18, 10, 22))
    vol = ct(balls(g, [c], 6.0, [1000], background=-1000), g)
    scene, window = scene_window(size=(128, 128), mapper="cpu")
    assert scene.fall_back_if_unsupported(window.window) == "cpu"
    scene.set_volume(vol, preset="ct_mip")
    scene.set_camera("left")
    img = window.render()
    expected = scene.world_to_display(c)
    cx, cy = bright_centroid(img)
    assert abs(cx - expected[0]) < 2.5 and abs(cy - expected[1]) < 2.5


def test_gpu_mapper_is_kept_where_opengl_supports_it(scene_window):
    scene, window = scene_window(size=(64, 64))
    window.render()
    assert scene.fall_back_if_unsupported(window.window) == "gpu"


def test_orientation_widget_attaches_to_an_interactor(scene_window):
    from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor

    from viewer.render3d.orientation_marker import add_orientation_widget

    scene, window = scene_window(size=(96, 96))
    interactor = vtkGenericRenderWindowInteractor()  # what a Qt VTK widget uses
    interactor.SetRenderWindow(window.window)
    widget = add_orientation_widget(interactor)
    scene.set_orientation_marker_visible(False)  # the widget replaces the corner renderer
    window.render()
    assert widget.GetEnabled() == 1 and widget.GetInteractive() == 0
    widget.SetEnabled(0)


def test_mr_volume_gets_the_mr_preset_resolved_to_its_intensities(can_render):
    from viewer.render3d.scene import Scene3D

    g = cube_geometry(n=24, spacing=2.0)
    arr = balls(g, [(0.0, 0.0, 0.0)], 10.0, [800], background=100)
    scene = Scene3D()
    scene.set_volume(Volume(arr, g, {"modality": "MR"}))
    assert scene.preset.name == "mr_default" and scene.preset.units == "value"
    values = [v for v, _ in scene.preset.opacity_points]
    assert min(values) == pytest.approx(100.0) and max(values) == pytest.approx(800.0)
    scene.set_shading(False)
    assert scene.volume_property.GetShade() == 0 and not scene.preset.shade
    with pytest.raises(KeyError):
        scene.set_camera("oblique")
