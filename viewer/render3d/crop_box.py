"""The crop box of the 3D view: a ``vtkBoxWidget2`` whose faces the user drags to cut the volume (no Qt).

It lives in its own renderer on the top layer, sharing the scene's camera, so it is drawn over the picture
whether the scene draws itself or a frame thread draws it (:mod:`viewer.render3d.frame_thread`).
"""
from __future__ import annotations

from typing import Callable

from vtkmodules.vtkInteractionWidgets import vtkBoxRepresentation, vtkBoxWidget2
from vtkmodules.vtkRenderingCore import vtkRenderer

#: the render-window layer of the crop box (the scene is on 0, the orientation cube on 1)
OVERLAY_LAYER = 2


def overlay_renderer(scene_renderer: vtkRenderer) -> vtkRenderer:
    """A renderer for widgets drawn over the scene: the top layer, the scene's camera, no mouse focus."""
    renderer = vtkRenderer()
    renderer.SetLayer(OVERLAY_LAYER)
    renderer.InteractiveOff()
    renderer.EraseOff()
    renderer.SetActiveCamera(scene_renderer.GetActiveCamera())
    return renderer


class CropBox:
    """A box widget placed on ``bounds`` (LPS): ``on_moved(bounds)`` while dragged, ``on_start``/``on_end`` around."""

    def __init__(self, interactor, renderer: vtkRenderer, bounds, on_moved: Callable[[tuple], None],
                 on_start: Callable[[], None], on_end: Callable[[], None]):
        rep = vtkBoxRepresentation()
        rep.SetPlaceFactor(1.0)
        rep.PlaceWidget(bounds)
        rep.GetOutlineProperty().SetColor(0.3, 0.8, 1.0)
        rep.SetHandleSize(rep.GetHandleSize() * 0.6)
        widget = vtkBoxWidget2()
        widget.SetRepresentation(rep)
        widget.SetInteractor(interactor)
        widget.SetDefaultRenderer(renderer)
        widget.SetCurrentRenderer(renderer)
        widget.RotationEnabledOff()
        widget.TranslationEnabledOn()
        widget.ScalingEnabledOn()
        self.widget = widget
        self.representation = rep
        self._on_moved = on_moved
        self._observers = [widget.AddObserver("InteractionEvent", lambda *_: on_moved(self.bounds())),
                           widget.AddObserver("StartInteractionEvent", lambda *_: on_start()),
                           widget.AddObserver("EndInteractionEvent", lambda *_: on_end())]
        widget.On()

    def bounds(self) -> tuple:
        """The box, LPS ``(xmin, xmax, ymin, ymax, zmin, zmax)``."""
        return tuple(self.representation.GetBounds())

    def place(self, bounds) -> None:
        """Put the box on ``bounds`` (as a drag would) and report it."""
        self.representation.PlaceWidget(bounds)
        self._on_moved(self.bounds())

    def close(self) -> None:
        for tag in self._observers:
            self.widget.RemoveObserver(tag)
        self._observers = []
        self.widget.Off()
        self.widget.SetInteractor(None)


class CropOutline:
    """The crop box as the frame thread draws it: its edges and a handle on each face (as ``vtkBoxRepresentation``
    shows them), for a view whose box widget takes the mouse but is not drawn itself."""

    def __init__(self, renderer: vtkRenderer):
        from vtkmodules.vtkFiltersSources import vtkOutlineSource, vtkSphereSource
        from vtkmodules.vtkRenderingCore import vtkActor, vtkGlyph3DMapper, vtkPolyDataMapper

        self.renderer = renderer
        self.bounds: tuple | None = None
        self._outline = vtkOutlineSource()
        mapper = vtkPolyDataMapper()
        mapper.SetInputConnection(self._outline.GetOutputPort())
        self.edges = vtkActor()
        self.edges.SetMapper(mapper)
        self.edges.GetProperty().SetColor(0.3, 0.8, 1.0)
        self.edges.GetProperty().LightingOff()
        self.edges.PickableOff()
        from vtkmodules.vtkCommonCore import vtkPoints
        from vtkmodules.vtkCommonDataModel import vtkPolyData

        self._points = vtkPoints()
        centres = vtkPolyData()
        centres.SetPoints(self._points)
        self._centres = centres
        self._sphere = vtkSphereSource()
        self._sphere.SetThetaResolution(12)
        self._sphere.SetPhiResolution(8)
        glyphs = vtkGlyph3DMapper()
        glyphs.SetInputData(centres)
        glyphs.SetSourceConnection(self._sphere.GetOutputPort())
        glyphs.ScalingOff()
        self.handles = vtkActor()
        self.handles.SetMapper(glyphs)
        self.handles.GetProperty().SetColor(1.0, 1.0, 1.0)
        self.handles.PickableOff()
        for actor in (self.edges, self.handles):
            actor.VisibilityOff()
            renderer.AddActor(actor)

    def show(self, bounds) -> None:
        """Draw the box on LPS ``bounds``; None hides it."""
        if bounds == self.bounds:
            return
        self.bounds = bounds
        if bounds is None:
            self.edges.VisibilityOff()
            self.handles.VisibilityOff()
            return
        b = [float(v) for v in bounds]
        self._outline.SetBounds(*b)
        cx, cy, cz = (b[0] + b[1]) / 2, (b[2] + b[3]) / 2, (b[4] + b[5]) / 2
        self._points.Reset()
        for p in ((b[0], cy, cz), (b[1], cy, cz), (cx, b[2], cz), (cx, b[3], cz), (cx, cy, b[4]), (cx, cy, b[5]),
                  (cx, cy, cz)):
            self._points.InsertNextPoint(*p)
        self._points.Modified()
        self._centres.Modified()
        self._sphere.SetRadius(0.012 * max(b[1] - b[0], b[3] - b[2], b[5] - b[4], 1e-6))
        self.edges.VisibilityOn()
        self.handles.VisibilityOn()

    def close(self) -> None:
        for actor in (self.edges, self.handles):
            self.renderer.RemoveActor(actor)
