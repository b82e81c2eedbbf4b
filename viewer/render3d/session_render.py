"""What a 3D view of a session shows, rendered without any widget (exports, the screenshot CLI)."""
from __future__ import annotations

import numpy as np

from viewer.core.session import Session
from viewer.render3d.label_surfaces import build_label_surfaces
from viewer.render3d.scene import Scene3D
from viewer.render3d.transfer_presets import TransferPreset


def render_session_offscreen(session: Session, size=(512, 512), camera: str = "anterior",
                             preset: str | TransferPreset | None = None, volume_visible: bool = True,
                             surfaces: bool = True, marker: bool = True) -> np.ndarray:
    """What a 3D view of ``session`` shows, rendered without a widget: ``(h, w, 3)`` uint8, top row first.

    For exports and the screenshot CLI: works under Qt's ``offscreen`` platform, where a VTK widget
    cannot render (an offscreen ``vtkRenderWindow``: EGL without X). Label surfaces are built here,
    synchronously; the cursor is the session's. ``size`` is ``(w, h)``.
    """
    from viewer.render3d.offscreen import OffscreenWindow

    scene = Scene3D()
    scene.set_orientation_marker_visible(marker)
    window = OffscreenWindow(scene, size)
    try:
        scene.fall_back_if_unsupported(window.window)
        if session.volume is not None and not session.volume.is_color:
            scene.set_volume(session.volume, preset)
            scene.set_volume_visible(volume_visible)
        if surfaces and session.overlays_visible:
            for layer in session.label_layers():
                scene.set_label_layer(layer, build_label_surfaces(layer.label_map))
        if session.volume is not None:
            scene.set_cursor(session.cursor_lps)
        scene.set_camera(camera)
        return window.render()
    finally:
        scene.close()
        window.close()
