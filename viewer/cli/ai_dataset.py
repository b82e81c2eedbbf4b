"""``radview-cli ai dataset --from-reviewed``: list the AI label layers of radview's store with their review state,
and (with ``--out``) write the reviewed ones as a training dataset folder for ``radview-cli ai train --data``.

The use cases are :mod:`viewer.logic.reviewed_data` (the listing) and :mod:`viewer.logic.reviewed_export`:
the store (``--store``, default the user data folder's annotation store, as the viewer uses) is read, never written;
the images are found in the local study database (``--study-db``, default the user's) and in the ``--images``
folders. Only accepted and edited-then-accepted results go in (``--state`` widens it); rejected, not-reviewed,
image-less and other-grid cases are listed with the reason they stay out. The dataset is written into a temporary
folder, checked like ``ai train`` checks it, and renamed into place.
"""
from __future__ import annotations

import json
import sys

from viewer.cli.common import TerminalProgress, UserError


def add_parser(asub) -> None:
    """Register ``ai dataset`` on the ``ai`` subparsers."""
    from viewer.logic.reviewed_data import EXPORTED_STATES, STATES

    pd = asub.add_parser("dataset", help="list reviewed AI results in radview's store, or write them as a training "
                                         "dataset (--out) for 'ai train --data'")
    pd.add_argument("--from-reviewed", action="store_true", required=True,
                    help="the AI label layers in radview's store, with their review decisions (the only source now)")
    pd.add_argument("--store", help="the annotation store folder (default: the user data folder's, as the viewer)")
    pd.add_argument("--study-db", help="the local study database folder (default: the user's); its series are found "
                                       "by UID")
    pd.add_argument("--images", action="append", default=[], metavar="DIR",
                    help="a folder to look for the series in (DICOM, or the image files opened); repeatable")
    pd.add_argument("--out", help="write the dataset folder here (without it: list only)")
    pd.add_argument("--state", action="append", choices=STATES, metavar="STATE",
                    help=f"review states to export (repeatable; default: {', '.join(EXPORTED_STATES)})")
    pd.add_argument("--labels", help="label names to train, comma-separated (checked as 'ai train --labels')")
    pd.add_argument("--replace", action="store_true", help="replace an earlier export in --out")
    pd.add_argument("--json", action="store_true", help="machine-readable listing")
    pd.set_defaults(func=cmd_dataset)


def _row(case, states) -> dict:
    return {"patient_id": case.patient_id, "study_uid": case.study_uid, "series_uid": case.series_uid,
            "layer_id": case.layer_id, "layer": case.name, "model_id": case.model_id,
            "labels": {str(k): v for k, v in sorted(case.labels.items())}, "state": case.state,
            "review": case.review_text, "image": case.image, "found_in": case.found_in,
            "left_out_because": case.left_out_because(states)}


def cmd_dataset(args) -> int:
    from radview_base.cancel import Cancelled
    from viewer.logic.reviewed_data import EXPORTED_STATES, list_cases
    from viewer.logic.reviewed_export import ReviewedDataError, export_reviewed

    states = tuple(args.state or EXPORTED_STATES)
    listing = list_cases(args.store, args.images, args.study_db)
    for problem in listing.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if args.json:
        json.dump([_row(c, states) for c in listing.cases], sys.stdout, indent=1, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        if not listing.cases:
            print("no AI label layers in the store")
        for case in listing.cases:
            why = case.left_out_because(states)
            print(f"{'+' if not why else '-'} {case.patient_id or '?':<14} {case.state:<13} {case.name} "
                  f"[{case.model_id}] series {case.series_uid}"
                  + (f"\n    image: {case.image} ({case.found_in})" if case.image else "")
                  + (f"\n    left out: {why}" if why else ""))
    if not args.out:
        return 0
    labels = tuple(n.strip() for n in args.labels.split(",") if n.strip()) if args.labels else ()
    try:
        result = export_reviewed(listing.cases, args.out, args.store, states=states, labels=labels,
                                 replace=args.replace, progress=TerminalProgress("export"))
    except (ReviewedDataError, Cancelled, OSError) as exc:
        raise UserError(str(exc)) from exc
    print(f"wrote {result.root}: {result.description}; {len(result.left_out)} left out "
          f"(see {result.root}/export.json); train with: radview-cli ai train --data {result.root} --out MODEL_DIR",
          file=sys.stderr)
    return 0
