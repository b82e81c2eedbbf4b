"""``radview-cli``: index, convert, demo, screenshot and ai (models, run) from the command line.

Each subcommand is a thin call into ``viewer.core``; a user error exits
non-zero with one line on stderr, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class _TerminalProgress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, label: str, enabled: bool | None = None):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def __call__(self, done: int, total: int, *_):
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _index(path: str, quiet: bool = False):
    from viewer.io.dicom_index import scan

    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or folder")
    return scan(path, progress=None if quiet else _TerminalProgress("indexing"))


def cmd_index(args) -> int:
    from viewer.io.image_io import is_image_file, read_image

    if is_image_file(args.path):
        vol = _read_image_file(args.path, read_image)
        g = vol.geometry
        payload = {"root": os.path.abspath(args.path), "n_files": 1, "patients": [], "skipped": [],
                   "series": [{"key": os.path.basename(args.path), "kind": "file", "n_images": g.shape_zyx[0],
                               "shape_zyx": list(g.shape_zyx), "spacing_zyx": list(g.spacing_zyx),
                               "origin_lps": list(g.origin_lps), "direction": [list(r) for r in g.direction],
                               "loadable": True, "warnings": vol.warnings}]}
    else:
        payload = _index(args.path, quiet=args.json).to_dict()
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for s in payload["series"]:
        shape = "×".join(str(v) for v in s["shape_zyx"]) if s.get("shape_zyx") else "-"
        status = "ok" if s["loadable"] else f"REFUSED: {s['refusal']}"
        print(f"{s['key']}\n    {s.get('modality', '')} {s.get('kind', '')} '{s.get('description', '')}' "
              f"{s['n_images']} images, shape {shape}: {status}")
        for w in s.get("warnings", []):
            print(f"    warning: {w}")
    for k in payload["skipped"]:
        print(f"skipped {k['path']}: {k['reason']}")
    return 0


def _read_image_file(path, reader):
    from viewer.io.image_io import ImageFileError

    try:
        return reader(path)
    except ImageFileError as exc:
        raise UserError(str(exc)) from exc


def cmd_convert(args) -> int:
    from viewer.io.image_io import IMAGE_EXTENSIONS, ImageFileError, write_image
    from viewer.io.series_loader import LoadError, load_path

    if not args.out.lower().endswith(IMAGE_EXTENSIONS):
        raise UserError(f"--out {args.out}: unknown format; use one of {', '.join(IMAGE_EXTENSIONS)}")
    if not os.path.exists(args.path):
        raise UserError(f"{args.path}: no such file or folder")
    try:
        volume = load_path(args.path, args.series, index_progress=_TerminalProgress("indexing"),
                           progress=_TerminalProgress("loading"), scaling=args.scaling)
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


def cmd_demo(args) -> int:
    from viewer.demo import generate_demo

    bar = _TerminalProgress("generating demo")
    paths = generate_demo(args.outdir, progress=lambda f, msg: bar(int(f * 100), 100))
    print(f"wrote demo study to {paths.dicom_dir}, truth in {os.path.dirname(paths.labels_nii)}")
    return 0


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WxH, e.g. 800x600, got {text!r}") from None
    if not (16 <= w <= 8000 and 16 <= h <= 8000):
        raise argparse.ArgumentTypeError("size must be between 16 and 8000 pixels per side")
    return w, h


def cmd_screenshot(args) -> int:
    from radview_base.geometry import GeometryMismatchError
    from viewer.io.image_io import ImageFileError
    from viewer.io.series_loader import LoadError
    from viewer.core.window_presets import find_preset

    if not os.path.exists(args.path):
        raise UserError(f"{args.path}: no such file or folder")
    if args.preset and args.view != "3d":
        try:
            find_preset(args.preset)
        except KeyError as exc:
            raise UserError(exc.args[0]) from exc
    if args.view != "3d" and args.camera:
        raise UserError("--camera applies to --view 3d only")
    if args.labels and not os.path.isfile(args.labels):
        raise UserError(f"--labels {args.labels}: no such file")
    from viewer.qt.capture.offscreen import ScreenshotRequest, render_screenshot

    req = ScreenshotRequest(path=args.path, out=args.out, view=args.view, series=args.series,
                            slice_index=args.slice, preset=args.preset, labels=args.labels, size=args.size,
                            show_patient_data=args.show_patient_data, layout=args.layout,
                            camera=args.camera or "anterior")
    try:
        out = render_screenshot(req)
    except (KeyError, ValueError, LoadError, ImageFileError, GeometryMismatchError, OSError) as exc:
        raise UserError(str(exc.args[0]) if exc.args else str(exc)) from exc
    print(f"wrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radview-cli", description="radview command-line tools (not for clinical use)")
    sub = p.add_subparsers(dest="command", required=True)
    pi = sub.add_parser("index", help="list the series of a DICOM folder (headers only)")
    pi.add_argument("path")
    pi.add_argument("--json", action="store_true", help="machine-readable output")
    pi.set_defaults(func=cmd_index)
    pc = sub.add_parser("convert", help="write a series as NIfTI (.nii/.nii.gz), NRRD or MetaImage")
    pc.add_argument("path")
    pc.add_argument("--series", help="series key or SeriesInstanceUID (default: the largest volume)")
    pc.add_argument("--out", required=True)
    pc.add_argument("--scaling", choices=("display", "philips-float"), default="display",
                    help="Philips MR: 'philips-float' applies the private scale slope as dcm2niix does")
    pc.set_defaults(func=cmd_convert)
    pd = sub.add_parser("demo", help="generate the synthetic demo chest CT study")
    pd.add_argument("outdir")
    pd.set_defaults(func=cmd_demo)
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
    ps.add_argument("--labels", help="a label map (NIfTI/NRRD) on the series' grid, shown as an overlay")
    ps.add_argument("--out", required=True, help="output .png or .jpg")
    ps.add_argument("--size", type=_size, default=(768, 768), help="WxH in pixels (default 768x768)")
    ps.add_argument("--show-patient-data", action="store_true", help="include patient name/ID (hidden by default)")
    ps.set_defaults(func=cmd_screenshot)
    from viewer.cli import ai as ai_cli

    ai_cli.add_parser(sub)
    __import__("viewer.cli.export", fromlist=["add_parser"]).add_parser(sub)  # export seg | sr | deid
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"radview-cli: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"radview-cli: error: {exc.strerror or exc}: {exc.filename}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("radview-cli: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    from viewer.cli.main import main as _main  # one module object: viewer.cli.ai raises viewer.cli.main.UserError

    sys.exit(_main())
