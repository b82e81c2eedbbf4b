"""``radview-cli``: index, convert, demo, screenshot, ai (models, run, eval), export and pacs from the command line.

One module per command group (``viewer.cli.index``, ``convert``, ``demo``, ``screenshot``, ``ai`` with its
``ai_eval`` sub-group, ``export``, ``pacs``), each with an ``add_parser(sub)``; this module only builds the parser
from them and runs the command. Each command is a thin call into ``viewer.io`` / ``viewer.logic`` /
``viewer.export``; a user error (:class:`viewer.cli.common.UserError`) exits non-zero with one line on
stderr, never a traceback. Only ``screenshot`` and ``export report`` load Qt, inside the command.
"""
from __future__ import annotations

import argparse
import sys

from viewer.cli import ai, batch, convert, demo, export, index, pacs, screenshot
from viewer.cli.common import EXIT_USER_ERROR, UserError

GROUPS = (index, convert, demo, screenshot, ai, export, pacs, batch)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radview-cli", description="radview command-line tools (not for clinical use)")
    sub = p.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_parser(sub)
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
    sys.exit(main())
