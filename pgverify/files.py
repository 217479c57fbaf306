"""Writing files whole or not at all: a temporary file in the target's folder, renamed into place.

Every command that writes a file (``derive -o``, ``export -o``, ``show -o``, ``import -o``) goes
through here, so an interrupted or failed write never leaves a half-written file behind.  None of
them creates folders: a missing folder is refused (:func:`output_problem`), by the commands before
any work, so that a failure leaves nothing behind, not even an empty folder.
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager

__all__ = ["atomic_target", "write_atomic", "output_problem", "OutputPathError"]


class OutputPathError(OSError):
    """The output path cannot be written (a missing or read-only folder, a folder as the file)."""

    def __init__(self, message: str):
        super().__init__(errno.ENOENT, message)


def output_problem(path) -> str | None:
    """Why ``path`` cannot be written as a new or replaced file, or None.

    The folder must exist and be writable (pgverify creates no folders), and ``path`` must not be
    a folder.
    """
    full = os.path.abspath(os.fspath(path))
    directory = os.path.dirname(full)
    if os.path.isdir(full):
        return f"{path} is a folder; give a file name"
    if not os.path.isdir(directory):
        shown = os.path.dirname(os.fspath(path)) or directory
        return (f"the folder {shown} does not exist; pgverify creates no folders (make it first: "
                f"mkdir -p {shown})")
    if not os.access(directory, os.W_OK):
        return f"the folder {os.path.dirname(os.fspath(path)) or directory} is not writable"
    return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_target(path, suffix: str = ".tmp"):
    """Yield a temporary path in ``path``'s folder; on success it replaces ``path``, else it is removed.

    The file gets the usual permissions (0666 less the umask; ``mkstemp`` makes it private), and
    its contents are flushed to disk before the rename.
    """
    directory = os.path.dirname(os.path.abspath(path))
    problem = output_problem(path)
    if problem is not None:
        raise OutputPathError(problem)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pgverify-", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    with atomic_target(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
