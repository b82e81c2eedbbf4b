"""Files named by a model folder must lie inside it (no torch; nothing is opened here).

Security rule: a model folder is untrusted input. Every file its manifest names (``network.file``,
``parameters.folder``) and every file an nnU-Net results folder holds for radview (``dataset.json``,
``plans.json``, ``fold_N/checkpoint_*.pth``) is checked before it is opened: an absolute path, a ``..`` part,
or a symlink whose resolved target leads outside the (resolved) folder is refused with one line naming the file
and the reason. Resolving reads links only; it never opens the target (a FIFO or a device file stays shut).
"""
from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath


def inside(folder: str | os.PathLike, name: str | os.PathLike, what: str,
           error: type[Exception] = ValueError) -> Path:
    """``folder / name`` resolved, when it stays inside ``folder``; otherwise raise ``error`` saying why.

    ``what`` names the field (e.g. ``"network.file"``) in the message.
    """
    text = os.fspath(name)
    if not isinstance(text, str) or not text.strip():
        raise error(f"{what}: an empty path")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or PureWindowsPath(text).drive:
        raise error(f"{what} '{text}' is an absolute path; name a file inside the model folder")
    if ".." in PureWindowsPath(text).parts:  # splits on both '/' and '\'
        raise error(f"{what} '{text}' has a '..' part; name a file inside the model folder")
    try:
        root = Path(folder).resolve()
        target = (root / text).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise error(f"{what} '{text}' cannot be resolved: {exc}") from None
    if not target.is_relative_to(root):
        raise error(f"{what} '{text}' is a symlink that leads outside the model folder {root} (to {target})")
    return target


def check_inside(folder: str | os.PathLike, names: list[str], error: type[Exception] = ValueError) -> None:
    """:func:`inside` for each of ``names`` (relative paths of files the folder holds) that exists as an entry."""
    root = Path(folder)
    for name in names:
        if os.path.lexists(root / name):
            inside(root, name, "file", error)
