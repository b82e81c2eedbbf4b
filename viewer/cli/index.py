"""``radview-cli index PATH [--json]``: the series of a DICOM folder (headers only), or one image file."""
from __future__ import annotations

import json
import os
import sys

from viewer.cli.common import TerminalProgress, UserError, require_exists


def add_parser(sub) -> None:
    """Register ``index`` on the top-level subparsers."""
    pi = sub.add_parser("index", help="list the series of a DICOM folder (headers only)")
    pi.add_argument("path")
    pi.add_argument("--json", action="store_true", help="machine-readable output")
    pi.set_defaults(func=cmd_index)


def _index(path: str, quiet: bool = False):
    from viewer.io.dicom_index import scan

    require_exists(path)
    return scan(path, progress=None if quiet else TerminalProgress("indexing"))


def read_image_file(path, reader):
    """``reader(path)``, an unreadable image file being a user error."""
    from viewer.io.image_io import ImageFileError

    try:
        return reader(path)
    except ImageFileError as exc:
        raise UserError(str(exc)) from exc


def _describe_time(index, payload: dict) -> None:
    """4D series: how many time points and what varies between them (``"time_axis"``), as the viewer says it."""
    from viewer.core.timepoints import time_axis

    for entry, out in zip(index.series, payload["series"]):
        if entry.plan is not None and entry.n_timepoints > 1:
            axis = time_axis(entry.plan.frames)
            out["time_axis"] = {"n": axis.n, "varies": list(axis.varies),
                                "values": [None if v is None else float(v) for v in axis.values]}


def cmd_index(args) -> int:
    from viewer.io.image_io import is_image_file, read_image

    if is_image_file(args.path):
        vol = read_image_file(args.path, read_image)
        g = vol.geometry
        payload = {"root": os.path.abspath(args.path), "n_files": 1, "patients": [], "skipped": [],
                   "series": [{"key": os.path.basename(args.path), "kind": "file", "n_images": g.shape_zyx[0],
                               "shape_zyx": list(g.shape_zyx), "spacing_zyx": list(g.spacing_zyx),
                               "origin_lps": list(g.origin_lps), "direction": [list(r) for r in g.direction],
                               "loadable": True, "warnings": vol.warnings}]}
    else:
        index = _index(args.path, quiet=args.json)
        payload = index.to_dict()
        _describe_time(index, payload)
    if args.json:
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for s in payload["series"]:
        shape = "×".join(str(v) for v in s["shape_zyx"]) if s.get("shape_zyx") else "-"
        status = "ok" if s["loadable"] else f"REFUSED: {s['refusal']}"
        print(f"{s['key']}\n    {s.get('modality', '')} {s.get('kind', '')} '{s.get('description', '')}' "
              f"{s['n_images']} images, shape {shape}: {status}")
        if s.get("time_axis"):
            axis = s["time_axis"]
            print(f"    {axis['n']} time points" + (f" ({', '.join(axis['varies'])} varies)" if axis["varies"] else ""))
        for w in s.get("warnings", []):
            print(f"    warning: {w}")
    for k in payload["skipped"]:
        print(f"skipped {k['path']}: {k['reason']}")
    return 0
