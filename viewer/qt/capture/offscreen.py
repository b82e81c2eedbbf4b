"""``radview-cli screenshot`` and ``export report``: render the real reading widgets offscreen.

No window is needed: Qt's offscreen platform is used unless a QApplication
already exists. The same ``SliceView`` / ``ViewLayout`` classes as the GUI
draw the image, overlays, corner text, orientation letters and scale bar, and
the same export path adds what a GUI screenshot has: no crosshair unless asked
for (``--crosshair``), and the AI stamp band when the ``--labels`` are AI
output (a findings.json with provenance beside them, as ``ai run`` writes it,
or radview's own SEG: ``viewer.logic.label_source``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ScreenshotRequest:
    path: str
    out: str
    view: str = "axial"  # axial | coronal | sagittal | layout
    series: str | None = None
    slice_index: int | None = None
    preset: str | None = None
    labels: str | None = None
    size: tuple[int, int] = (768, 768)
    show_patient_data: bool = False
    layout: str = "1x3"
    camera: str = "anterior"
    image: int | None = None  # 2D series: the Nth image (1-based) of a stack
    frame: int | None = None  # 2D series: the Nth frame (1-based) of a cine
    include_crosshair: bool = False  # the linked cursor's lines (left out unless asked for)


def planar_series_at(path: str, series: str | None):
    """The 2D series (radiographs, ultrasound, cine …) that ``path`` opens to, loaded; None for a volume."""
    from viewer.io import loaders
    from viewer.io.planar import load_planar

    best = loaders.examine(path)[0]
    if best.kind != loaders.DICOM_FILES:
        return None
    index = loaders.load(best)
    entry = index.find(series) if series else index.largest_volume()
    return load_planar(entry) if entry is not None and entry.planar else None


def _render_planar(app, series, req: ScreenshotRequest) -> str:
    """A 2D series as the GUI hangs it, or one image / frame of it (``--image``, ``--frame``), fitted to the view."""
    from viewer.core.session import Session
    from viewer.qt.capture.screenshot import grab, save_image
    from viewer.qt.views.planar_area import PlanarArea
    from viewer.qt.views.planar_view import PlanarView

    session = Session()
    if req.image is not None or req.frame is not None:
        image = (req.image or 1) - 1
        if not 0 <= image < len(series.images):
            raise ValueError(f"--image {req.image} out of range (1..{len(series.images)})")
        frame = (req.frame or 1) - 1
        n_frames = series.images[image].n_frames
        if not 0 <= frame < n_frames:
            raise ValueError(f"--frame {req.frame} out of range (1..{n_frames})")
        session.images = series
        widget = PlanarView(session)
        widget.set_series(series, image)
        widget.show_position(image, frame)
    else:
        widget = PlanarArea(session)
        session.load_images(series)
    widget.resize(*req.size)
    widget.show()
    app.processEvents()
    for view in ([widget] if isinstance(widget, PlanarView) else widget.views):
        view.reset_view()
    app.processEvents()
    try:
        return save_image(grab(widget, session, req.show_patient_data), req.out)
    finally:
        widget.close()
        widget.deleteLater()
        app.processEvents()


_painting_app = None  # the QGuiApplication made for painting without a window; lives as long as the process


def painting_app():
    """A Qt application that fonts and painting (the PDF report) need, on the offscreen platform unless one exists."""
    global _painting_app
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.instance() is None:
        _painting_app = QGuiApplication([])
    return QGuiApplication.instance()


def render_screenshot(req: ScreenshotRequest) -> str:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if not os.environ.get("DISPLAY"):  # VTK: render through EGL directly instead of failing on X first
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    from viewer.qt.application import create_app

    app = create_app()
    from viewer.core.session import Session
    from viewer.io.series_loader import load_path
    from viewer.logic.label_source import load_label_layer
    from viewer.qt.capture.screenshot import ScreenshotOptions, render, save_image
    from viewer.qt.views.slice_view import SliceView
    from viewer.qt.views.view_layout import ViewLayout

    if req.view != "3d":
        planar = planar_series_at(req.path, req.series)
        if planar is not None:
            return _render_planar(app, planar, req)
    elif req.image is not None or req.frame is not None:
        raise ValueError("--image / --frame apply to 2D series, not to --view 3d")
    volume = load_path(req.path, req.series)
    if req.image is not None or req.frame is not None:
        raise ValueError("--image / --frame apply to 2D series (radiographs, stacks, cine); this is a volume")
    session = Session()
    session.load_volume(volume, preset=None if req.view == "3d" else req.preset)
    if req.labels:
        session.add_layer(load_label_layer(req.labels, volume))
    if req.view == "3d":
        from PySide6.QtGui import QImage

        from viewer.logic.export_stamp import export_stamp
        from viewer.qt.capture.stamp import with_band
        from viewer.render3d.session_render import render_session_offscreen
        from viewer.render3d.transfer_presets import find_preset_name

        preset = find_preset_name(req.preset, volume.modality or "CT") if req.preset else None
        rgb = render_session_offscreen(session, req.size, camera=req.camera, preset=preset)
        h, w, _ = rgb.shape
        picture = QImage(rgb.data, w, h, 3 * w, QImage.Format_RGB888).copy()
        return save_image(with_band(picture, export_stamp(session, everything=True)), req.out)
    if req.view == "layout":
        widget = ViewLayout(session)
        widget.set_layout(req.layout)
        target = widget.views["axial"]
    else:
        widget = target = SliceView(session, req.view)
    widget.resize(*req.size)
    widget.show()
    app.processEvents()
    for view in ([target] if req.view != "layout" else widget.views.values()):
        view.reset_view()
    if req.slice_index is not None:
        if not 0 <= req.slice_index < target.plane.n_slices:
            raise ValueError(f"--slice {req.slice_index} out of range (0..{target.plane.n_slices - 1})")
        target.set_slice(req.slice_index)
    app.processEvents()
    options = ScreenshotOptions(include_patient_data=req.show_patient_data, include_crosshair=req.include_crosshair)
    try:
        return save_image(render(widget, options), req.out)
    finally:
        for view in ([target] if req.view != "layout" else widget.views.values()):
            view.fitted = False  # a re-fit still queued by a resize finds nothing to do once the view is gone
        widget.close()
        widget.deleteLater()
        app.processEvents()
