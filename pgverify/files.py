"""Writing files whole or not at all: a temporary file in the target's folder, renamed into place.

Every command that writes a file (``derive -o``, ``export -o``, ``show -o``, ``import -o``) goes
through here, so an interrupted or failed write never leaves a half-written file behind.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager

__all__ = ["atomic_target", "write_atomic"]


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
