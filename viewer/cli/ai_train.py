"""``radview-cli ai train``: train radview's own 3D U-Net on a folder of labelled cases into a model folder.

The data, the split and their refusals are :mod:`ai.training.dataset`'s; the loop, checkpoints and report are
:mod:`ai.training.trainer`'s (torch, imported inside the command only). The result is a model folder
(``model.toml`` + ``model.safetensors``, ``report/``, ``training/checkpoint.pt``) that ``ai run --model-dir``
and Run AI load at once. A killed run started again with the same data and options resumes from its last
checkpoint; ``--restart`` starts over, ``--resume`` insists on a checkpoint.
"""
from __future__ import annotations

import argparse
import os
import sys

from viewer.cli.common import UserError


def _triple(kind):
    def parse(text: str):
        try:
            values = [kind(v) for v in text.replace("x", ",").split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: one number or three (z,y,x)") from None
        if len(values) == 1:
            values *= 3
        if len(values) != 3 or min(values) <= 0:
            raise argparse.ArgumentTypeError(f"{text!r}: one positive number or three (z,y,x)")
        return tuple(values)
    return parse


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated widths such as 16,32,64,128") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated positive widths")
    return values


def add_parser(asub, device_type) -> None:
    """Register ``ai train`` on the ``ai`` subparsers."""
    pt = asub.add_parser("train", help="train radview's 3D U-Net on labelled cases into a model folder "
                                       "(research use)")
    pt.add_argument("--data", required=True, help="a folder of cases: each an image (DICOM folder or NIfTI/NRRD) "
                                                  "with a label map and its labels.json; optional dataset.toml")
    pt.add_argument("--out", required=True, help="the model folder to write (and resume from)")
    pt.add_argument("--init", help="a model folder of radview's U-Net to fine-tune")
    pt.add_argument("--labels", help="label names to train, comma-separated (default: all of the dataset's)")
    budget = pt.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="time budget of the whole run (default 60)")
    budget.add_argument("--epochs", type=int, help="number of epochs instead of a time budget")
    pt.add_argument("--device", type=device_type, default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    pt.add_argument("--spacing", type=_triple(float), help="model grid spacing in mm: S or Z,Y,X "
                                                            "(default: the data's median)")
    pt.add_argument("--patch", type=_triple(int), help="patch size in voxels: N or Z,Y,X")
    pt.add_argument("--features", type=_ints, help="U-Net level widths (default 16,32,64,128)")
    pt.add_argument("--batch-size", type=int, default=2)
    pt.add_argument("--lr", type=float, default=2e-3, help="initial learning rate (AdamW, polynomial decay)")
    pt.add_argument("--steps-per-epoch", type=int, default=50)
    pt.add_argument("--patience", type=int, default=10,
                    help="stop after this many epochs without a better validation Dice (0: never)")
    pt.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints (and every epoch)")
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--no-augment", action="store_true", help="no rotation, scaling, intensity or mirroring")
    pt.add_argument("--mirror", type=float, default=0.5,
                    help="probability of mirroring each allowed axis (never left-right when a label is lateral)")
    pt.add_argument("--id", help="the model's id (default: the --out folder's name)")
    pt.add_argument("--name", help="the model's name as Run AI lists it")
    pt.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    again = pt.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="resume the checkpoint in --out (it must exist); "
                                                             "a matching one is resumed anyway")
    again.add_argument("--restart", action="store_true", help="start over, ignoring a checkpoint in --out")
    pt.set_defaults(func=cmd_train)


def _settings(args):
    from ai.training.settings import TrainSettings

    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out}: not a folder")
    labels = tuple(n.strip() for n in args.labels.split(",") if n.strip()) if args.labels else ()
    try:
        return TrainSettings(
            data=args.data, out=args.out, init=args.init or "", labels=labels, minutes=args.minutes,
            epochs=args.epochs, device=args.device, spacing_mm=args.spacing, patch_size=args.patch,
            features=args.features, batch_size=args.batch_size, learning_rate=args.lr,
            steps_per_epoch=args.steps_per_epoch, patience=args.patience, checkpoint_every=args.checkpoint_every,
            seed=args.seed, augment=not args.no_augment, mirror=args.mirror, model_id=args.id or "",
            model_name=args.name or "", resume="always" if args.resume else "never" if args.restart else "auto",
            threads=args.threads)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def cmd_train(args) -> int:
    settings = _settings(args)
    from ai.api import Cancelled
    from ai.training.dataset import DatasetError
    from ai.training.trainer import TrainingError, train

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        outcome = train(settings, log=log)
    except (DatasetError, TrainingError, Cancelled) as exc:
        raise UserError(str(exc)) from exc
    dice = ", ".join(f"{k} {v:.3f}" for k, v in outcome.best_dice.items())
    print(f"wrote model {outcome.model_id} (run {outcome.run_id}) to {outcome.out}: {outcome.steps} steps, "
          f"{outcome.elapsed_s:.0f} s, stopped by {outcome.stopped}; validation Dice {dice}; "
          f"report in {os.path.join(outcome.out, 'report')}")
    return 0
