"""Atomic writes for exports: see :mod:`viewer.core.atomic_file` (one mechanism for exports and autosave)."""
from viewer.core.atomic_file import TEMP_PREFIX, atomic_path, atomic_write, atomic_write_bytes, fsync_folder

__all__ = ["atomic_write", "atomic_path", "atomic_write_bytes", "fsync_folder", "TEMP_PREFIX"]
