"""``radview``: the GUI entry point."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from viewer.qt.application import create_app

#: ``module:function`` called with the main window once it is shown (automation and end-to-end tests)
STARTUP_HOOK_ENV = "RADVIEW_STARTUP_HOOK"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="radview", description="radview viewer (not for clinical use)")
    p.add_argument("path", nargs="?", help="a study folder, DICOM file, or NIfTI/NRRD/MetaImage file")
    p.add_argument("--demo", action="store_true", help="open the built-in synthetic demo study")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    app = create_app()
    from viewer.qt.main_window import MainWindow

    window = MainWindow()
    window.show()
    # The ~200k objects of the imported libraries live as long as the app: keep them out of the collector's
    # full passes, each of which otherwise walks them all and freezes the GUI for 100-200 ms.
    import gc

    gc.freeze()
    if args.demo:
        window.open_demo()
    elif args.path:
        window.open_path(args.path)
    hook = os.environ.get(STARTUP_HOOK_ENV)
    if hook:
        module, _, function = hook.partition(":")
        getattr(importlib.import_module(module), function or "main")(window)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
