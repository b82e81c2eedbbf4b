"""``radview-cli convert PATH [--series KEY] --out FILE``: a series as NIfTI, NRRD or MetaImage.

The series is read straight into one output array and written from it slice by slice
(:mod:`viewer.io.image_writer`): the process peaks at about one volume (1.09× for a 1,500-slice 512² CT, measured
by ``bench/load.py``), not two. Slices left out (an unusable position, pixels that do not decode) and resampling
are printed as warnings.
"""
from __future__ import annotations

import sys

from viewer.cli.common import TerminalProgress, UserError, require_exists


def add_parser(sub) -> None:
    """Register ``convert`` on the top-level subparsers."""
    pc = sub.add_parser("convert", help="write a series as NIfTI (.nii/.nii.gz), NRRD or MetaImage")
    pc.add_argument("path")
    pc.add_argument("--series", help="series key or SeriesInstanceUID (default: the largest volume)")
    pc.add_argument("--out", required=True)
    pc.add_argument("--scaling", choices=("display", "philips-float"), default="display",
                    help="Philips MR: 'philips-float' applies the private scale slope as dcm2niix does")
    pc.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from viewer.io.image_io import IMAGE_EXTENSIONS, ImageFileError, write_image
    from viewer.io.series_loader import LoadError, load_path

    if not args.out.lower().endswith(IMAGE_EXTENSIONS):
        raise UserError(f"--out {args.out}: unknown format; use one of {', '.join(IMAGE_EXTENSIONS)}")
    require_exists(args.path)
    try:
        volume = load_path(args.path, args.series, index_progress=TerminalProgress("indexing"),
                           progress=TerminalProgress("loading"), scaling=args.scaling)
    except (KeyError, LoadError, ImageFileError) as exc:
        raise UserError(exc.args[0]) from exc
    if volume.is_color:
        raise UserError("colour images cannot be written as NIfTI volumes here; pick a grayscale series")
    try:
        write_image(volume, args.out)
    except (ImageFileError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot write {args.out}: {exc}") from exc
    for w in volume.warnings:
        print(f"warning: {w}", file=sys.stderr)
    g = volume.geometry
    print(f"wrote {args.out}: shape_zyx {g.shape_zyx}, spacing_zyx {tuple(round(v, 4) for v in g.spacing_zyx)}, "
          f"{volume.array.dtype}")
    return 0
