"""Exports: DICOM SEG (:mod:`.seg`), DICOM SR TID 1500 and JSON (:mod:`.sr`), de-identified copies (``.deid``).

Qt-free and torch-free. Every file is written through :mod:`.atomic` (temporary
name in the destination folder, then one rename), so a failed export leaves no
half-written file. AI results carry their provenance into every export and are
labelled ``AI_NOT_REVIEWED`` until a user has reviewed them.

Importing this package is cheap; highdicom is imported by the modules that need it.
"""
from __future__ import annotations

__all__ = ["ExportError", "AI_NOT_REVIEWED"]

#: The label every AI result carries in an export until a user accepts it (fits a DICOM LO, 64 characters).
AI_NOT_REVIEWED = "AI result, not reviewed"


class ExportError(ValueError):
    """An export that cannot be made as asked; the message is one line for the user."""
