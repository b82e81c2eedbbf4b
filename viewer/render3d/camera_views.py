"""Standard 3D camera views in LPS, as radiologists name them.

Each view is the side of the patient the camera stands on, with the direction it looks along and
the screen's up, both in LPS. The screen's right is ``look × up``, so:

==========  ==================  ==========  ===================================
view        looks along         up          screen right shows
==========  ==================  ==========  ===================================
anterior    +P (from the front)  S          the patient's left (as facing them)
posterior   −P (from behind)     S          the patient's right
left        −L (from the left)   S          posterior
right       +L (from the right)  S          anterior
superior    −S (from above)      A          the patient's right
inferior    +S (from the feet)   A          the patient's left (as axial slices)
==========  ==================  ==========  ===================================
"""
from __future__ import annotations

import numpy as np

#: view → (direction of projection, view up), unit vectors in LPS.
VIEWS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "anterior": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "posterior": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),
    "left": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "right": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "superior": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),
    "inferior": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),
}


def screen_right(view: str) -> np.ndarray:
    """The LPS direction that points to the screen's right in ``view``."""
    look, up = (np.asarray(v) for v in VIEWS[view])
    return np.cross(look, up)


def apply_camera_view(renderer, view: str, bounds=None) -> None:
    """Point ``renderer``'s camera at ``bounds`` (default: all visible props) from the named side, and fit."""
    try:
        look, up = VIEWS[view]
    except KeyError:
        raise KeyError(f"no camera view {view!r}; known: {', '.join(VIEWS)}") from None
    camera = renderer.GetActiveCamera()
    if bounds is None:
        bounds = renderer.ComputeVisiblePropBounds()
    b = np.asarray(bounds, dtype=float).reshape(3, 2)
    center = b.mean(axis=1) if np.all(b[:, 1] >= b[:, 0]) else np.zeros(3)
    camera.SetFocalPoint(*center)
    camera.SetPosition(*(center - 100.0 * np.asarray(look)))
    camera.SetViewUp(*up)
    camera.OrthogonalizeViewUp()
    renderer.ResetCamera(*bounds) if np.all(b[:, 1] >= b[:, 0]) else renderer.ResetCamera()
    renderer.ResetCameraClippingRange()
