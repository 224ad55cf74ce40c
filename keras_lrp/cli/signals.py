"""SIGTERM handled like Ctrl-C, and a second signal stops at once.

SLURM, Kubernetes, ``docker stop`` and spot-instance pre-emption send SIGTERM first (then
SIGKILL after a grace period). While a command runs, :func:`stop_on_signals` turns the first
SIGINT into ``KeyboardInterrupt`` and the first SIGTERM into :class:`Terminated` (a
``KeyboardInterrupt``, so every ``with`` block that keeps finished work on Ctrl-C keeps it on
SIGTERM too); the batch in flight is dropped, and the command exits 130 or 143. A second SIGINT
or SIGTERM exits at once with the same code, without unwinding: what is on disk stays
resumable, as after a SIGKILL (see :class:`keras_lrp.io.writer.RelevanceWriter`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Terminated(KeyboardInterrupt):
    """The process got SIGTERM."""


def exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal's number: 143 for SIGTERM, 130 for Ctrl-C."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


def _at_once(signum, frame):
    os.write(2, b"\nkeras-lrp: stopping now; the finished batches stay on disk (--resume)\n")
    os._exit(128 + signum)


def _first(signum, frame):
    for s in SIGNALS:
        signal.signal(s, _at_once)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGINT and SIGTERM stop as described above (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _first) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
