"""A render window that is never drawn: the renderers, camera and interactor of a 3D view whose frames are drawn on
the frame thread (:mod:`viewer.render3d.frame_thread`).

The view's widget gives the mouse to :attr:`InputWindow.interactor`; its interactor style turns the scene's camera,
its pickers pick (geometry on the CPU), a crop-box widget drags its faces, exactly as in a drawn window, but the
interactor never draws (``EnableRender`` off; a ``vtkGenericOpenGLRenderWindow`` that is never ready): each time it
would, it fires ``RenderEvent``, and the view asks the frame thread for a frame instead. So the GUI thread makes no
OpenGL context and compiles no shader (on a software OpenGL that alone took 250-400 ms).
"""
from __future__ import annotations

from vtkmodules.vtkRenderingOpenGL2 import vtkGenericOpenGLRenderWindow
from vtkmodules.vtkRenderingUI import vtkGenericRenderWindowInteractor


class InputWindow:
    """``window`` (holds the renderers, has the widget's size) and ``interactor`` (fed by the widget's events)."""

    def __init__(self, size=(300, 300)):
        self.window = vtkGenericOpenGLRenderWindow()
        self.window.SetReadyForRendering(False)  # never drawn: a Render() does nothing
        self.window.SetNumberOfLayers(3)
        self.interactor = vtkGenericRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.window)
        self.interactor.EnableRenderOff()  # RenderEvent only
        self.set_size(*size)

    def set_size(self, w: int, h: int) -> None:
        w, h = max(1, int(w)), max(1, int(h))
        self.window.SetSize(w, h)
        self.interactor.SetSize(w, h)
        self.interactor.ConfigureEvent()

    def close(self) -> None:
        self.interactor.Disable()
        self.interactor.SetInteractorStyle(None)
        self.interactor.SetRenderWindow(None)
