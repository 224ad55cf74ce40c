"""Starting a :class:`~keras_lrp.io.writer.RelevanceWriter`'s work folder: resumed from an
interrupted run, or new.

``resume=True`` continues ``<path>.partial`` whatever process wrote it, if its metadata equals
this run's (every key but ``created``); the writer's ``resumed_rows`` says how many input rows
to skip. A work folder whose header differs or cannot be read raises ValueError naming it and
the key; it is never silently started over. A shard cut short or damaged ends what is resumed
there (the writer's ``recovery`` says so); the rows before it are kept. One made on another
Keras backend (or another version of it) is refused too, unless ``other_backend=True``: the
backends agree to about 1e-6 of max |R| in float32, not bit for bit. Without ``resume`` a run
starts at row 0 and first discards an older ``<path>.partial``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence, Tuple

import h5py

from keras_lrp.io import journal
from keras_lrp.io.layout import FORMAT, FORMAT_VERSION, check_format
from keras_lrp.io.metadata import _MARK, _VERSION, BACKEND_KEYS, decode, differing_keys


def open_work(work: journal.WorkFolder, attrs: Mapping[str, Any], expected: Sequence[str],
          resume: bool, other_backend: bool) -> Tuple[int, Optional[str]]:
    """Open ``work`` for this run (metadata ``attrs``, datasets ``expected``): resumed when
    ``resume`` and the folder exists, else discarded and created anew.

    Returns:
        ``(resumed_rows, recovery)``: the whole rows kept (every dataset cut back to them), and
        what recovery did to a damaged shard (None if nothing).
    """
    if not (resume and os.path.exists(work.path)):
        journal.discard(work.path)
        work.create({_MARK: FORMAT, _VERSION: FORMAT_VERSION, **attrs})
        return 0, None
    check_partial(work, attrs, BACKEND_KEYS if other_backend else ())
    recovery = work.open()
    index = work.index
    rows = journal.whole_rows({k: index.count(k) for k in index.pieces}, expected)
    if any(n != rows for n in work.disk.values()):
        work.cut(rows)
    return rows, recovery


def check_partial(work: journal.WorkFolder, attrs: Mapping[str, Any], ignore=()) -> None:
    """Raise ValueError unless the work folder's header is readable and has this metadata
    (``attrs``, encoded), but for the keys in ``ignore``."""
    p, remedy = work.path, "delete it or drop resume=True (--resume)"
    try:
        with h5py.File(work.header(), "r") as f:
            check_format(f, p)
            old, new = decode(f.attrs), decode(attrs)
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(f"Cannot resume from {p!r}: it is not a readable keras-lrp results "
                         f"file ({e}); it may have been cut short. To start over, {remedy}."
                         ) from None
    keys = differing_keys(old, new, ignore)
    if any(k in BACKEND_KEYS for k in keys):
        raise ValueError(
            f"Cannot resume from {p!r}: it was made on Keras backend "
            f"{old.get('backend', 'tensorflow')} {old.get('backend_version', '')}, this run "
            f"uses {new.get('backend')} {new.get('backend_version')}. Rerun on that backend "
            "(--backend, KERAS_BACKEND), or pass other_backend=True "
            "(--resume-other-backend) to continue anyway; or, to start over, "
            f"{remedy}.")
    if keys:
        shown = "; ".join(f"{k}: {repr(old.get(k, '<missing>'))[:80]} there, "
                          f"{repr(new.get(k, '<missing>'))[:80]} now" for k in keys[:3])
        raise ValueError(f"Cannot resume from {p!r}: its metadata differs from this run's in "
                         f"{keys} ({shown}). Rerun with its settings; or, to start over, "
                         f"{remedy}.")


__all__ = ["check_partial", "open_work"]
