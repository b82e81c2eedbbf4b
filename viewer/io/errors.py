"""The error every reader in ``viewer.io`` raises for a file or series it cannot open (one line for the user)."""
from __future__ import annotations


class LoadError(RuntimeError):
    """The series cannot be loaded; the message says why."""
