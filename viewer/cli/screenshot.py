"""``radview-cli screenshot``: a view rendered offscreen by the real reading widgets, saved as PNG/JPEG.

The arguments are checked here, without Qt; only then is Qt loaded, through ``viewer.qt.capture.offscreen``.
Like a GUI export, the picture has no crosshair unless ``--crosshair`` asks for it, and AI labels in view
(``--labels`` with a findings.json beside them, or radview's SEG) bring the stamp band with their review state
and a legend.
"""
from __future__ import annotations

import argparse
import os

from viewer.cli.common import UserError, check_preset, require_exists


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 800x600, got {text!r}") from None
    if not (16 <= w <= 8000 and 16 <= h <= 8000):
        raise argparse.ArgumentTypeError("size must be between 16 and 8000 pixels per side")
    return w, h


def add_parser(sub) -> None:
    """Register ``screenshot`` on the top-level subparsers."""
    ps = sub.add_parser("screenshot", help="render a view offscreen and save it as PNG/JPEG, as a user would see it")
    ps.add_argument("path", help="a DICOM folder or an image file")
    ps.add_argument("--series", help="series key or SeriesInstanceUID (default: the largest volume)")
    ps.add_argument("--view", choices=("axial", "coronal", "sagittal", "layout", "3d"), default="axial")
    ps.add_argument("--camera", choices=("anterior", "posterior", "left", "right", "superior", "inferior"),
                    help="with --view 3d: the side the camera looks from (default anterior)")
    ps.add_argument("--layout", choices=("1x1", "1x3", "2x2"), default="1x3", help="with --view layout")
    ps.add_argument("--slice", type=int, help="slice number (0-based) of the view (layout: of the axial view)")
    ps.add_argument("--preset", help="2D: window preset (soft tissue, lung, bone, brain, liver, mediastinum, stroke, "
                                     "CT angiography, or 'from file', the default); 3D: volume-rendering preset "
                                     "(bone, soft tissue, lung, angio, mip, minip; MR: default, mip)")
    ps.add_argument("--image", type=int, help="2D series: the Nth image (1-based) of a stack (default: the hanging)")
    ps.add_argument("--frame", type=int, help="2D series: the Nth frame (1-based) of a cine")
    ps.add_argument("--labels", help="a label map (NIfTI/NRRD, or a DICOM SEG) on the series' grid, shown as an "
                                     "overlay; AI output when a findings.json with provenance lies beside it (as "
                                     "'ai run' writes it) or the SEG names an automatic algorithm: the picture then "
                                     "carries the 'AI result, not reviewed' stamp and a legend of the labels")
    ps.add_argument("--crosshair", action="store_true", help="draw the crosshair (left out by default)")
    ps.add_argument("--out", required=True, help="output .png or .jpg")
    ps.add_argument("--size", type=_size, default=(768, 768), help="WxH in pixels (default 768x768)")
    ps.add_argument("--show-patient-data", action="store_true", help="include patient name/ID (hidden by default)")
    ps.set_defaults(func=cmd_screenshot)


def cmd_screenshot(args) -> int:
    from radview_base.geometry import GeometryMismatchError
    from viewer.io.image_io import ImageFileError
    from viewer.io.series_loader import LoadError

    require_exists(args.path)
    if args.preset and args.view != "3d":
        check_preset(args.preset)
    if args.view != "3d" and args.camera:
        raise UserError("--camera applies to --view 3d only")
    if args.labels and not os.path.isfile(args.labels):
        raise UserError(f"--labels {args.labels}: no such file")
    from viewer.qt.capture.offscreen import ScreenshotRequest, render_screenshot

    req = ScreenshotRequest(path=args.path, out=args.out, view=args.view, series=args.series,
                            slice_index=args.slice, preset=args.preset, labels=args.labels, size=args.size,
                            show_patient_data=args.show_patient_data, layout=args.layout,
                            camera=args.camera or "anterior", image=args.image, frame=args.frame,
                            include_crosshair=args.crosshair)
    try:
        out = render_screenshot(req)
    except (KeyError, ValueError, LoadError, ImageFileError, GeometryMismatchError, OSError) as exc:
        raise UserError(str(exc.args[0]) if exc.args else str(exc)) from exc
    print(f"wrote {out}")
    return 0
