"""Render a :class:`~viewer.render3d.scene.Scene3D` without a screen, into a numpy RGB image.

An offscreen ``vtkRenderWindow`` (EGL with no X server, or an offscreen X/OSMesa window) and
``vtkWindowToImageFilter``: the only reliable capture of VTK pixels (``QWidget.grab()`` of a VTK widget
returns garbage). Used by exports and tests.
"""
from __future__ import annotations

import numpy as np
import vtkmodules.vtkRenderingOpenGL2  # noqa: F401  (the OpenGL render window factory)
from vtkmodules.util import numpy_support
from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkWindowToImageFilter


def read_pixels(window) -> np.ndarray:
    """The last rendered frame of a render window (on screen or not) as ``(h, w, 3)`` uint8, top row first."""
    grab = vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.ShouldRerenderOff()  # the caller has just rendered
    grab.Update()
    image = grab.GetOutput()
    w, h, _ = image.GetDimensions()
    rgb = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)
    return np.ascontiguousarray(rgb[::-1, :, :3])  # VTK's first row is the bottom one


class OffscreenWindow:
    """A reusable offscreen render window for one scene (a new window per frame would re-upload the volume)."""

    def __init__(self, scene, size=(512, 512)):
        self.scene = scene
        self.window = vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetMultiSamples(0)
        self.window.SetSize(int(size[0]), int(size[1]))
        scene.attach(self.window)

    def render(self, size=None) -> np.ndarray:
        """Render and read back ``(h, w, 3)`` uint8, top row first."""
        if size is not None and tuple(self.window.GetSize()) != (int(size[0]), int(size[1])):
            self.window.SetSize(int(size[0]), int(size[1]))
        self.window.Render()
        return read_pixels(self.window)

    def close(self) -> None:
        self.scene.detach(self.window)
        self.window.Finalize()


def render_to_array(scene, size=(512, 512)) -> np.ndarray:
    """One offscreen frame of ``scene`` as ``(h, w, 3)`` uint8 (``size`` is ``(w, h)``), top row first."""
    window = OffscreenWindow(scene, size)
    try:
        return window.render()
    finally:
        window.close()
