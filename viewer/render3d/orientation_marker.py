"""The orientation cube of the 3D view: faces lettered with the patient directions (LPS: +x = L).

Two ways to show it:

* :class:`CornerMarker`: a small renderer in a corner viewport, on layer 1 above the scene, whose
  camera follows the scene's camera. Needs no interactor, so it works offscreen and in exports.
* :func:`add_orientation_widget`: VTK's ``vtkOrientationMarkerWidget`` for an interactive window
  (it needs an interactor; the user can't drag it, it only follows the camera).
"""
from __future__ import annotations

import numpy as np
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor
from vtkmodules.vtkRenderingCore import vtkRenderer

#: face → letter: the patient direction the face's outward normal points to.
FACE_LETTERS = {"x+": "L", "x-": "R", "y+": "P", "y-": "A", "z+": "S", "z-": "I"}


def make_orientation_cube() -> vtkAnnotatedCubeActor:
    """An annotated cube with L/R, P/A, S/I faces (as in 3D Slicer's and OHIF's 3D views)."""
    cube = vtkAnnotatedCubeActor()
    cube.SetXPlusFaceText(FACE_LETTERS["x+"])
    cube.SetXMinusFaceText(FACE_LETTERS["x-"])
    cube.SetYPlusFaceText(FACE_LETTERS["y+"])
    cube.SetYMinusFaceText(FACE_LETTERS["y-"])
    cube.SetZPlusFaceText(FACE_LETTERS["z+"])
    cube.SetZMinusFaceText(FACE_LETTERS["z-"])
    cube.SetFaceTextScale(0.65)
    cube.GetCubeProperty().SetColor(0.35, 0.35, 0.4)
    cube.GetTextEdgesProperty().SetColor(0.9, 0.9, 0.9)
    cube.GetTextEdgesProperty().SetLineWidth(1.0)
    red, green, blue = (1.0, 0.45, 0.45), (0.45, 1.0, 0.45), (0.5, 0.6, 1.0)  # L/R, P/A, S/I letters
    for prop, rgb in ((cube.GetXPlusFaceProperty(), red), (cube.GetXMinusFaceProperty(), red),
                      (cube.GetYPlusFaceProperty(), green), (cube.GetYMinusFaceProperty(), green),
                      (cube.GetZPlusFaceProperty(), blue), (cube.GetZMinusFaceProperty(), blue)):
        prop.SetColor(*rgb)
        prop.SetInterpolationToFlat()
    return cube


class CornerMarker:
    """An orientation cube in a corner viewport whose camera turns with ``scene_renderer``'s camera."""

    def __init__(self, scene_renderer: vtkRenderer, viewport=(0.0, 0.0, 0.18, 0.18)):
        self.scene_renderer = scene_renderer
        self.renderer = vtkRenderer()
        self.renderer.SetViewport(*viewport)
        self.renderer.SetLayer(1)
        self.renderer.InteractiveOff()
        self.renderer.EraseOff()  # drawn over the scene, background left as it is
        self.cube = make_orientation_cube()
        self.renderer.AddViewProp(self.cube)
        self._observer = scene_renderer.AddObserver("StartEvent", lambda *_: self.follow())
        self.follow()

    def follow(self) -> None:
        """Give the marker's camera the scene camera's direction and up, at a fixed distance."""
        src = self.scene_renderer.GetActiveCamera()
        dop = np.asarray(src.GetDirectionOfProjection())
        cam = self.renderer.GetActiveCamera()
        cam.SetFocalPoint(0.0, 0.0, 0.0)
        cam.SetPosition(*(-4.0 * dop))
        cam.SetViewUp(*src.GetViewUp())
        cam.ParallelProjectionOff()
        cam.SetViewAngle(30.0)
        self.renderer.ResetCameraClippingRange()

    def set_visible(self, on: bool) -> None:
        self.renderer.SetDraw(bool(on))

    def close(self) -> None:
        if self._observer is not None:
            self.scene_renderer.RemoveObserver(self._observer)
            self._observer = None


def add_orientation_widget(interactor, viewport=(0.0, 0.0, 0.18, 0.18)) -> vtkOrientationMarkerWidget:
    """Show the orientation cube in a corner of ``interactor``'s window; keep the returned widget alive."""
    widget = vtkOrientationMarkerWidget()
    widget.SetOrientationMarker(make_orientation_cube())
    widget.SetInteractor(interactor)
    widget.SetViewport(*viewport)
    widget.SetEnabled(1)
    widget.InteractiveOff()
    return widget
