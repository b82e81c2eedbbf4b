"""What every ``radview-cli`` command group shares: the user-error type, its exit status, the progress bar.

A :class:`UserError` is bad input from the user; ``viewer.cli.main`` prints it as one line on stderr and
exits with :data:`EXIT_USER_ERROR`, never a traceback. Command modules convert the errors of
``viewer.logic`` / ``viewer.io`` into it.

The progress bar is tqdm's (on stderr, only when stderr is a terminal), not a hand-written one: tqdm
already rate-limits redraws, sizes the bar to the terminal and handles being closed early.
"""
from __future__ import annotations

import os
import sys

EXIT_USER_ERROR = 2


class UserError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


def require_exists(path: str) -> None:
    """A user error unless ``path`` is an existing file or folder."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or folder")


def check_preset(name: str) -> None:
    """A user error unless ``name`` is a 2D window preset."""
    from viewer.core.window_presets import find_preset

    try:
        find_preset(name)
    except KeyError as exc:
        raise UserError(exc.args[0]) from exc


class TerminalProgress:
    """A ``progress(done, total, *_)`` callback drawn as a one-line tqdm bar on stderr (only on a terminal).

    The bar closes (leaving its last state and a newline) when ``done`` reaches ``total``; a new ``total``
    starts a new bar.
    """

    def __init__(self, label: str, enabled: bool | None = None):
        self.label = label
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._bar = None

    def __call__(self, done: int, total: int, *_) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        total = max(int(total), 1)
        if self._bar is None or self._bar.total != total:
            self.close()
            self._bar = tqdm(total=total, desc=self.label, file=sys.stderr, mininterval=0.1, leave=True,
                             dynamic_ncols=True)
        self._bar.update(min(int(done), total) - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
