"""Faults of the file system met by a command: one line that says what failed and what to do, and an exit code.

A fault the user can fix from the command line (no permission, a read-only file system, a name too long, a file
where a folder should be) exits with code 2, like any other bad input; a fault of the machine (a full disk, a
disk quota, an input/output error) exits with code 1. Every command of the package (``train.py``, ``python -m
reengage.evaluate``, ``python -m reengage.certify``, ``python -m reengage.experiment``) reports an ``OSError``
through :func:`describe_fault` and :func:`fault_exit_code` instead of a traceback.

:func:`make_folders` creates a folder and its missing parents and, when that fails, removes the ones it made:
a refused command leaves nothing outside the paths it was given.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

# faults that a different path, or permissions, fix: the user's to fix, exit code 2 (like bad input)
USER_FIXABLE = frozenset(
    {
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENAMETOOLONG,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.ENOENT,
        errno.ELOOP,
        errno.EINVAL,
        errno.ETXTBSY,
        errno.EXDEV,
    }
)

_REMEDIES = {
    errno.EACCES: "this user may not write there: choose another path, or change the folder's permissions",
    errno.EPERM: "this user may not write there: choose another path, or change the folder's permissions",
    errno.EROFS: "that file system is read-only: choose a path on a writable one",
    errno.ENAMETOOLONG: "a name in the path is longer than the file system allows (255 bytes on most): "
    "choose a shorter one",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "the path is a folder where a file is written: give a file path",
    errno.ENOENT: "a folder of the path does not exist: create it, or choose another path",
    errno.ENOSPC: "the disk is full: free some space, or choose a path on another disk",
    errno.EDQUOT: "the disk quota is used up: free some space, or choose a path on another disk",
    errno.EIO: "the disk reported an input/output error: check the disk, or choose a path on another one",
}

# path components longer than this are shortened in messages (a name too long would fill the line)
_SHOWN_NAME_BYTES = 48


def fault_exit_code(error: OSError) -> int:
    """2 for a fault the user can fix (permissions, the path), 1 for one of the machine (a full disk)."""
    return 2 if error.errno in USER_FIXABLE else 1


def _shown(path: object) -> str:
    parts = []
    for part in str(path).split(os.sep):
        size = len(part.encode(errors="surrogateescape"))
        parts.append(f"{part[:24]}...({size} bytes)" if size > _SHOWN_NAME_BYTES else part)
    return os.sep.join(parts)


def describe_fault(error: OSError) -> str:
    """``PATH: what the system said; what to do`` on one line."""
    where = error.filename if error.filename is not None else None
    reason = error.strerror or str(error) or type(error).__name__
    remedy = _REMEDIES.get(error.errno or -1, "check the path and the disk")
    text = f"{_shown(where)}: {reason}" if where is not None else reason
    if error.filename2 is not None:
        text += f" (to {_shown(error.filename2)})"
    return f"{text}; {remedy}"


def with_path(error: OSError, path: str | Path) -> OSError:
    """``error`` naming ``path`` when it names no file: a write that fails part-way (a full disk) raises an
    ``OSError`` without the file's name, which the one-line message needs."""
    if error.filename is not None or error.errno is None:
        return error
    named = type(error)(error.errno, error.strerror or os.strerror(error.errno), str(path))
    named.__cause__ = error
    return named


def make_folders(path: str | Path) -> list[Path]:
    """Create ``path`` and its missing parents; returns the folders made, outermost first. If a level cannot be
    made, the levels made before it are removed again and the ``OSError`` is raised."""
    path = Path(path)
    missing: list[Path] = []
    for candidate in [path, *path.parents]:
        if candidate.is_dir():
            break
        missing.append(candidate)
    made: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir(exist_ok=True)  # exist_ok: another process may make it at the same moment
            made.append(folder)
    except OSError:
        remove_made_folders(made)
        raise
    return made


def remove_made_folders(made: list[Path]) -> None:
    """Remove the folders :func:`make_folders` made (innermost first), where they are still empty."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            pass
