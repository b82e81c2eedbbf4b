"""The one cancellation exception: a job whose ``threading.Event`` was set stops by raising :class:`Cancelled`."""
from __future__ import annotations


class Cancelled(Exception):
    """The user cancelled the operation; nothing was produced."""
