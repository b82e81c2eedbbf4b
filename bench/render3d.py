"""Benchmark: 3D view frame times and label-surface building, radview vs a plain VTK pipeline.

Usage::

    python bench/render3d.py [--frames N] [--size WxH] [--surface-repeats N] [--skip-surfaces]
                             [--skip-volume] [--mapper gpu|cpu]

Runs without Qt: an offscreen ``vtkRenderWindow`` (EGL when there is no X display, else an
offscreen X window; under ``xvfb-run`` it is GLX on Mesa). The GL renderer string is printed:
``llvmpipe`` is Mesa's software rasteriser (CPU cores do the ray casting), anything else a GPU.
The data is the cached demo study (``viewer.demo.ensure_demo``): the thin CT series
(160×512×512 int16, 0.75 × 0.75 × 2 mm) and its truth label map (same grid, 8 labels).

Volume rendering (window W×H, default 512×512, the CT-bone transfer function, shaded)
    radview full          viewer.render3d.scene.Scene3D (GPU ray caster, one sample per 0.75 mm,
                          jittered, full-resolution volume) at quality "full" — what the 3D view shows
                          at rest (orientation cube hidden, no cursor or surfaces)
    radview interactive   the same scene at quality "interactive": the volume downsampled to at
                          most 256 voxels per axis (160×256×256), one sample per 1.5 mm, one ray per
                          2×2 pixels (the scene's fixed interactive setting)
    radview interactive, adaptive
                          the same, with the ray spacing adapted after every frame as the 3D view
                          does while the user drags (View3D, when full frames take longer than 50 ms):
                          viewer.qt.views.view3d.adapted_image_sample_distance aims at 80 ms per frame,
                          rays 2 to 4 pixels apart; 4 untimed frames let it settle
    radview full + surfaces, radview interactive, adaptive + coarse surfaces
                          (unless --skip-surfaces) the same two with the 8 label surfaces of the truth
                          label map in the scene (body see-through, as the 3D view shows them); at
                          interactive quality the big surfaces are drawn from their coarse copies
                          (viewer.qt.views.view3d.coarse_surfaces), as the 3D view does while dragging
    plain VTK             vtkImageData (numpy_support, no copy) + vtkSmartVolumeMapper (defaults:
                          GPU path where supported, sample distance from the spacing) + a
                          vtkVolumeProperty with the same colour/opacity points, shading and linear
                          interpolation, in a vtkRenderer of the same window size
    A frame is: turn the camera 360/N degrees (azimuth), ``Render()``, ``WaitForCompletion()``
    (glFinish: llvmpipe and GPUs return from Render before the pixels are done). The first frame of
    each method (texture upload, shader compilation) is reported apart and not in the median.

Label surfaces (the demo truth label map, all 8 labels, one polydata per label, with normals)
    radview               viewer.render3d.label_surfaces.build_label_surfaces: each label cut out
                          by its bounding box (one pass), vtkSurfaceNets3D with 6 constrained
                          smoothing passes, vtkPolyDataNormals — what the 3D view runs off the GUI thread
    plain VTK             per label over the whole label image: vtkDiscreteFlyingEdges3D (value =
                          label) + vtkWindowedSincPolyDataFilter (15 iterations, pass band 0.001, as in
                          VTK's examples) + vtkPolyDataNormals
    radview + coarse copies   what the 3D view's worker thread runs: the above, then a coarse copy of
                          each surface over 50 000 triangles (vtkQuadricClustering on a 3 mm grid +
                          normals) for its interactive frames
    Median of ``--surface-repeats`` (default 3) builds each.

Targets
    radview interactive, adaptive ≥ 10 frames/s (median ≤ 100 ms) at the given size: "interactive rates";
        also reported with the label surfaces in the scene
    radview full median ≤ 1.25 × plain VTK median (no slower than the plain pipeline)
    radview surfaces ≤ plain VTK surfaces
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402,F401
from _report import parse_size, verdict  # noqa: E402  (bench/ is on sys.path[0])
from vtkmodules.util import numpy_support  # noqa: E402
from vtkmodules.vtkCommonCore import vtkVersion  # noqa: E402
from vtkmodules.vtkCommonDataModel import vtkImageData  # noqa: E402
from vtkmodules.vtkRenderingCore import vtkRenderer, vtkRenderWindow, vtkVolume  # noqa: E402
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper  # noqa: E402

INTERACTIVE_FPS_TARGET = 10.0
FULL_VS_PLAIN_TARGET = 1.25
SLOW_FRAME_MS = 50.0  # View3D switches to interactive quality while dragging above this


def load_demo():
    from viewer.demo import ensure_demo
    from viewer.io.dicom_index import scan
    from viewer.io.image_io import read_label_map
    from viewer.io.series_loader import load_series

    paths = ensure_demo()
    volume = load_series(scan(str(paths.dicom_dir)).find(paths.ct_series_uid))
    return volume, read_label_map(str(paths.labels_nii))


def gl_renderer(window) -> str:
    caps = window.ReportCapabilities() or ""
    m = re.search(r"OpenGL renderer string:\s*(.+)", caps)
    version = re.search(r"OpenGL version string:\s*(.+)", caps)
    text = m.group(1).strip() if m else "unknown"
    return text + (f" (OpenGL {version.group(1).strip()})" if version else "")


# --- volume rendering ------------------------------------------------------------------------
class RadviewVolume:
    warmup = 0

    def __init__(self, volume, size, quality, mapper, adaptive=False, layer=None, surfaces=None):
        from viewer.render3d.offscreen import OffscreenWindow
        from viewer.render3d.scene import Scene3D

        self.name = f"radview {quality}" + (", adaptive" if adaptive else "")
        if surfaces is not None:
            self.name += " + coarse surfaces" if quality == "interactive" else " + surfaces"
        self.adaptive = adaptive
        self.warmup = 4 if adaptive else 0  # frames for the ray spacing to settle
        self.scene = Scene3D(mapper=mapper)
        self.scene.set_orientation_marker_visible(False)
        self.offscreen = OffscreenWindow(self.scene, size)
        self.window = self.offscreen.window
        self.scene.set_volume(volume, preset="ct_bone")
        self.scene.set_quality(quality)
        if surfaces is not None:
            self.scene.set_label_layer(layer, surfaces)
        self.scene.set_camera("anterior")
        self.renderer = self.scene.renderer

    def after_frame(self, ms: float) -> None:
        """What View3D does after each interactive frame: space the rays to meet its frame-time target."""
        if self.adaptive:
            from viewer.render3d.level_of_detail import adapted_image_sample_distance

            mapper = self.scene.volume_prop.GetMapper()
            mapper.SetImageSampleDistance(adapted_image_sample_distance(mapper.GetImageSampleDistance(), ms))

    def describe(self) -> str:
        return f"image sample distance {self.scene.volume_prop.GetMapper().GetImageSampleDistance():.2f}"

    def close(self):
        self.scene.close()
        self.offscreen.close()


class PlainVolume:
    name = "plain VTK"
    warmup = 0

    def after_frame(self, ms: float) -> None:
        pass

    def describe(self) -> str:
        return ""

    def __init__(self, volume, size):
        from viewer.render3d.transfer_presets import build_volume_property, get_preset

        g = volume.geometry
        image = vtkImageData()
        nz, ny, nx = volume.array.shape
        image.SetDimensions(nx, ny, nz)
        image.SetSpacing(*g.spacing_xyz)
        image.SetOrigin(*g.origin_lps)
        self._array = np.ascontiguousarray(volume.array)
        image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(self._array.reshape(-1), deep=False))
        self.mapper = vtkSmartVolumeMapper()
        self.mapper.SetInputData(image)
        prop = build_volume_property(get_preset("ct_bone"))  # the same points and shading as radview's
        self.actor = vtkVolume()
        self.actor.SetMapper(self.mapper)
        self.actor.SetProperty(prop)
        self.renderer = vtkRenderer()
        self.renderer.AddVolume(self.actor)
        self.window = vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetMultiSamples(0)
        self.window.SetSize(*size)
        self.window.AddRenderer(self.renderer)
        from viewer.render3d.camera_views import apply_camera_view

        apply_camera_view(self.renderer, "anterior")

    def close(self):
        self.renderer.RemoveVolume(self.actor)
        self.window.RemoveRenderer(self.renderer)
        self.window.Finalize()


def time_frames(method, frames: int) -> tuple[float, list[float]]:
    """(first frame ms, timed frame ms list); ``method.warmup`` untimed frames after the first."""
    t = time.perf_counter()
    method.window.Render()
    method.window.WaitForCompletion()
    first = (time.perf_counter() - t) * 1e3
    method.after_frame(first)
    camera = method.renderer.GetActiveCamera()
    times = []
    for i in range(method.warmup + frames):
        camera.Azimuth(360.0 / frames)
        method.renderer.ResetCameraClippingRange()
        t = time.perf_counter()
        method.window.Render()
        method.window.WaitForCompletion()
        ms = (time.perf_counter() - t) * 1e3
        method.after_frame(ms)
        if i >= method.warmup:
            times.append(ms)
    return first, times


def screen_coverage(window) -> float:
    """Share of non-black pixels in the last frame (a sanity check that something was drawn)."""
    from vtkmodules.vtkRenderingCore import vtkWindowToImageFilter

    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.ShouldRerenderOff()
    grab.Update()
    px = numpy_support.vtk_to_numpy(grab.GetOutput().GetPointData().GetScalars())
    return float((px.max(axis=1) > 10).mean())


# --- surfaces ---------------------------------------------------------------------------------
def plain_surfaces(label_map) -> dict:
    from vtkmodules.vtkCommonDataModel import vtkPolyData
    from vtkmodules.vtkFiltersCore import vtkPolyDataNormals, vtkWindowedSincPolyDataFilter
    from vtkmodules.vtkFiltersGeneral import vtkDiscreteFlyingEdges3D

    g = label_map.geometry
    image = vtkImageData()
    nz, ny, nx = label_map.array.shape
    image.SetDimensions(nx, ny, nz)
    image.SetSpacing(*g.spacing_xyz)
    image.SetOrigin(*g.origin_lps)
    image.SetDirectionMatrix(*np.asarray(g.direction_matrix).reshape(-1))
    arr = np.ascontiguousarray(label_map.array)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(arr.reshape(-1), deep=False))
    out = {}
    for label in label_map.present_labels():
        fe = vtkDiscreteFlyingEdges3D()
        fe.SetInputData(image)
        fe.SetValue(0, label)
        fe.ComputeNormalsOff()
        fe.ComputeGradientsOff()
        fe.ComputeScalarsOff()
        smooth = vtkWindowedSincPolyDataFilter()
        smooth.SetInputConnection(fe.GetOutputPort())
        smooth.SetNumberOfIterations(15)
        smooth.SetPassBand(0.001)
        smooth.BoundarySmoothingOff()
        smooth.FeatureEdgeSmoothingOff()
        smooth.NonManifoldSmoothingOn()
        smooth.NormalizeCoordinatesOn()
        normals = vtkPolyDataNormals()
        normals.SetInputConnection(smooth.GetOutputPort())
        normals.SplittingOff()
        normals.ConsistencyOn()
        normals.Update()
        poly = vtkPolyData()
        poly.ShallowCopy(normals.GetOutput())
        out[label] = poly
    return out


def time_call(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t)
    return times, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=9, help="timed frames per volume method (default 9)")
    parser.add_argument("--size", type=parse_size, default=(512, 512), help="render window WxH (default 512x512)")
    parser.add_argument("--surface-repeats", type=int, default=3, help="surface builds per method (default 3)")
    parser.add_argument("--skip-surfaces", action="store_true")
    parser.add_argument("--skip-volume", action="store_true")
    parser.add_argument("--mapper", choices=("gpu", "cpu"), default="gpu", help="radview's ray caster (default gpu)")
    args = parser.parse_args(argv)
    w, h = args.size

    volume, label_map = load_demo()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"radview 3D benchmark: demo CT {'×'.join(map(str, volume.array.shape))} {volume.array.dtype}, "
          f"labels {len(label_map.present_labels())}; VTK {vtkVersion.GetVTKVersion()}, numpy {np.__version__}, "
          f"python {platform.python_version()}, {cores} CPU core(s), load average {os.getloadavg()[0]:.2f} "
          f"(other work on the machine makes timings noisy)")

    verdicts = []
    surface_rows = None
    if not args.skip_surfaces:
        from viewer.core.layers import LabelLayer
        from viewer.render3d.label_surfaces import build_label_surfaces
        from viewer.render3d.level_of_detail import coarse_surfaces

        ours_t, ours = time_call(lambda: build_label_surfaces(label_map), args.surface_repeats)
        coarse_t, coarse = time_call(lambda: coarse_surfaces(ours), args.surface_repeats)
        plain_t, theirs = time_call(lambda: plain_surfaces(label_map), args.surface_repeats)
        layer = LabelLayer(label_map, name="truth")
        full_set = dict(ours)
        coarse_set = {**ours, **coarse}
        surface_rows = (ours_t, ours, coarse_t, coarse, plain_t, theirs)

    if not args.skip_volume:
        rows = {}
        renderer_name = None
        notes = {}
        makers = [lambda: RadviewVolume(volume, (w, h), "full", args.mapper),
                  lambda: RadviewVolume(volume, (w, h), "interactive", args.mapper),
                  lambda: RadviewVolume(volume, (w, h), "interactive", args.mapper, adaptive=True),
                  lambda: PlainVolume(volume, (w, h))]
        if surface_rows is not None:
            makers += [lambda: RadviewVolume(volume, (w, h), "full", args.mapper, layer=layer, surfaces=full_set),
                       lambda: RadviewVolume(volume, (w, h), "interactive", args.mapper, adaptive=True, layer=layer,
                                             surfaces=coarse_set)]
        for make in makers:
            method = make()
            try:
                first, times = time_frames(method, args.frames)
                renderer_name = renderer_name or gl_renderer(method.window)
                rows[method.name] = (first, times, screen_coverage(method.window))
                notes[method.name] = method.describe()
            finally:
                method.close()
        print(f"GL renderer: {renderer_name}")
        print(f"\nvolume rendering, window {w}×{h}, CT bone preset, {args.frames} timed frames each "
              f"(camera turning), median and spread:")
        plain = statistics.median(rows["plain VTK"][1])
        print(f"{'method':<52}{'first ms':>10}{'median ms':>11}{'min ms':>9}{'max ms':>9}{'frames/s':>10}"
              f"{'vs plain VTK':>14}{'drawn':>8}  notes")
        for name, (first, times, coverage) in rows.items():
            med = statistics.median(times)
            print(f"{name:<52}{first:>10.1f}{med:>11.1f}{min(times):>9.1f}{max(times):>9.1f}{1e3 / med:>10.1f}"
                  f"{med / plain:>14.2f}{coverage:>8.0%}  {notes[name]}")
        full = statistics.median(rows["radview full"][1])
        inter = statistics.median(rows["radview interactive, adaptive"][1])
        slow = full > SLOW_FRAME_MS
        print(f"(full {full:.0f} ms {'>' if slow else '≤'} {SLOW_FRAME_MS:g} ms: the 3D view "
              f"{'renders drags at interactive quality' if slow else 'keeps full quality while dragging'}; "
              f"interactive, adaptive is {full / inter:.1f}× faster than full)")
        verdicts.append(f"radview interactive (adaptive, as the 3D view drags) ≥ {INTERACTIVE_FPS_TARGET:g} "
                        f"frames/s ({1e3 / inter:.1f}): {verdict(1e3 / inter >= INTERACTIVE_FPS_TARGET)}")
        with_surfaces = "radview interactive, adaptive + coarse surfaces"
        if with_surfaces in rows:
            inter_s = statistics.median(rows[with_surfaces][1])
            verdicts.append(f"the same with the 8 label surfaces (coarse copies) ≥ {INTERACTIVE_FPS_TARGET:g} "
                            f"frames/s ({1e3 / inter_s:.1f}): {verdict(1e3 / inter_s >= INTERACTIVE_FPS_TARGET)}")
        verdicts.append(f"radview full ≤ {FULL_VS_PLAIN_TARGET:g} × plain VTK ({full / plain:.2f}×): "
                        f"{verdict(full <= FULL_VS_PLAIN_TARGET * plain)}")

    if surface_rows is not None:
        ours_t, ours, coarse_t, coarse, plain_t, theirs = surface_rows
        print(f"\nlabel surfaces of the demo truth label map ({len(ours)} labels), median of "
              f"{args.surface_repeats} build(s):")
        print(f"{'method':<34}{'median s':>10}{'min s':>8}{'max s':>8}{'triangles':>12}{'vs plain VTK':>14}")
        plain_med = statistics.median(plain_t)
        both_t = [a + b for a, b in zip(ours_t, coarse_t)]
        for name, times, surfaces in (("radview", ours_t, ours),
                                      # triangles of this row: the coarse set, drawn while dragging
                                      ("radview + coarse copies (View3D)", both_t, {**ours, **coarse}),
                                      ("plain VTK", plain_t, theirs)):
            tris = sum(p.GetNumberOfCells() for p in surfaces.values())
            med = statistics.median(times)
            print(f"{name:<34}{med:>10.2f}{min(times):>8.2f}{max(times):>8.2f}{tris:>12,}{med / plain_med:>14.2f}")
        names = label_map.labels
        print("per label triangles (radview / coarse / plain): " + ", ".join(
            f"{names.get(k, k)} {ours[k].GetNumberOfCells():,}/"
            f"{coarse[k].GetNumberOfCells() if k in coarse else ours[k].GetNumberOfCells():,}/"
            f"{theirs[k].GetNumberOfCells():,}" for k in sorted(ours)))
        ours_med = statistics.median(ours_t)
        verdicts.append(f"radview surfaces ≤ plain VTK ({ours_med:.2f} s vs {plain_med:.2f} s): "
                        f"{verdict(ours_med <= plain_med)}")
        both_med = statistics.median(both_t)
        verdicts.append(f"radview surfaces + coarse copies ≤ plain VTK ({both_med:.2f} s): "
                        f"{verdict(both_med <= plain_med)}")

    if verdicts:
        print("\ntargets: " + "; ".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
