"""The one way keras-lrp puts a file in place: written beside its destination, flushed to disk,
then renamed onto it, so that a reader (or a later run) never sees a half-written file and a
failure leaves nothing behind. Figures, token pages, analyzer files and results files all go
through :func:`write_atomically` or :func:`replace` (a work folder's shards are renamed into place
and fsynced in groups, see :mod:`keras_lrp.io.journal`)."""

from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable


def write_atomically(path, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(handle)`` on a binary temporary file in ``path``'s folder, then move it onto
    ``path`` (see :func:`replace`). The file gets the permissions an ordinary ``open`` would
    give it (0666 less the umask).

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Folder {folder!r} for {path!r} does not exist; create it.")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's file is private (0600); ours are not
        replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def replace(tmp, path) -> None:
    """Move the finished file ``tmp`` onto ``path`` durably: its bytes are flushed to disk
    (fsync) before the rename, and the rename itself after it (the folder is fsynced), so a
    power loss leaves either the old file or the whole new one."""
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_folder(os.path.dirname(os.path.abspath(path)))


def fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles (Windows): the rename stands
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
