"""``radview-cli demo OUTDIR``: the synthetic demo chest CT study (``viewer.demo``)."""
from __future__ import annotations

import os

from viewer.cli.common import TerminalProgress


def add_parser(sub) -> None:
    """Register ``demo`` on the top-level subparsers."""
    pd = sub.add_parser("demo", help="generate the synthetic demo chest CT study")
    pd.add_argument("outdir")
    pd.add_argument("--seed", type=int, default=None,
                    help="vary the patient and its nodules by this seed (absent: the demo study)")
    pd.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from viewer.demo import generate_demo

    bar = TerminalProgress("generating demo")
    paths = generate_demo(args.outdir, seed=args.seed, progress=lambda f, msg: bar(int(f * 100), 100))
    seed = "" if args.seed is None else f" (seed {args.seed})"
    print(f"wrote demo study{seed} to {paths.dicom_dir}, truth in {os.path.dirname(paths.labels_nii)}")
    return 0
