"""One writer per results file, and no files left behind by dead ones.

:class:`OutputLock` holds ``<out>.lock`` while a :class:`~keras_lrp.io.results.RelevanceWriter`
writes ``<out>``. On POSIX it is an ``flock``: the kernel drops it when its process dies, however
it dies, so a lock left by a killed run is stale by construction and simply taken over; the file
names the holder (``pid@host``) for the message a second run prints. Without ``fcntl`` (Windows)
the file is created exclusively and a holder whose pid is not alive on this host is stale.

Temporary names carry their owner: ``<out>.tmp-<pid>@<host>…`` beside the output and
``.tmp-<pid>@<host>…`` inside the work folder (keras-lrp 0.4 wrote ``<out>.tmp-<pid>``).
:func:`remove_stale` deletes those whose pid is not alive on this host, never a live one's.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
from typing import List, Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

_TMP = re.compile(r"\.tmp-(\d+)(?:@([A-Za-z0-9_-]+))?(\..*)?$")


def host() -> str:
    """This machine's short name, safe in a file name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"


def tag() -> str:
    """``pid@host`` of this process: what temporary names and the lock file carry."""
    return f"{os.getpid()}@{host()}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    except OSError as e:  # Windows: no such process
        return e.errno != errno.ESRCH and getattr(e, "winerror", None) != 87
    return True


def _dead_owner(name: str) -> bool:
    match = _TMP.search(name)
    if match is None:
        return False
    pid, owner = int(match.group(1)), match.group(2)
    return (owner is None or owner == host()) and pid != os.getpid() and not pid_alive(pid)


def remove_stale(path: str, work_folder: Optional[str] = None) -> List[str]:
    """Delete temporary files and folders of ``path`` (and inside ``work_folder``) left by
    runs whose pid is no longer alive on this host. Returns what was removed."""
    folder = os.path.dirname(os.path.abspath(path))
    prefixes = tuple(os.path.basename(p) + ".tmp-" for p in (path, work_folder) if p)
    candidates = [os.path.join(folder, n) for n in os.listdir(folder) if n.startswith(prefixes)]
    if work_folder and os.path.isdir(work_folder):
        candidates += [os.path.join(work_folder, n) for n in os.listdir(work_folder)
                       if n.startswith(".tmp-")]
    removed = []
    for candidate in candidates:
        if not _dead_owner(os.path.basename(candidate)):
            continue
        try:
            if os.path.isdir(candidate) and not os.path.islink(candidate):
                shutil.rmtree(candidate)
            else:
                os.remove(candidate)
            removed.append(candidate)
        except FileNotFoundError:
            pass
    return removed


class LockedError(OSError):
    """Another live run holds the lock on this output."""


class OutputLock:
    """``with OutputLock("run.h5"):`` holds ``run.h5.lock``, or raises :class:`LockedError`
    naming the holder."""

    def __init__(self, path: str):
        self.path, self.lock_path, self._fd = os.fspath(path), f"{os.fspath(path)}.lock", None

    def acquire(self) -> OutputLock:
        for _ in range(10):  # retried only when the file is replaced under us
            fd = self._open()
            if fd is not None:
                self._fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{tag()}\n".encode())
                return self
        raise LockedError(f"could not lock {self.lock_path!r}: it is replaced again and again.")

    def _open(self) -> Optional[int]:
        if fcntl is None:
            return self._open_exclusive()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read(fd)
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise self._locked(holder) from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
        except FileNotFoundError:  # the holder removed it between our open and flock
            same = False
        if not same:
            os.close(fd)
            return None
        return fd

    def _open_exclusive(self) -> Optional[int]:
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            with open(self.lock_path, encoding="utf-8", errors="replace") as handle:
                holder = handle.read().strip()
            pid, _, owner = holder.partition("@")
            if pid.isdigit() and owner in ("", host()) and not pid_alive(int(pid)):
                os.remove(self.lock_path)  # stale: its run is gone
                return None
            raise self._locked(holder) from None

    def _locked(self, holder: str) -> LockedError:
        who = f"pid {holder.replace('@', ' on ')}" if holder else "another process"
        return LockedError(f"{self.path!r} is being written by another keras-lrp "
                           f"run ({who}, holding {self.lock_path!r}); wait for it to finish, "
                           "or choose another output file.")

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.remove(self.lock_path)  # while still holding it: see _open's inode check
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode("utf-8", "replace").strip()
    except OSError:
        return ""
