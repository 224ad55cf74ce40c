"""Deprecated: checking and batching what users pass to ``analyze`` moved to
:mod:`keras_lrp.analyzers.inputs`, beside its only users.

``keras_lrp.io.inputs`` keeps working for one release: importing it warns once with a
DeprecationWarning, and each of its names is loaded from the new module when first used.
:mod:`keras_lrp.io` lies below :mod:`keras_lrp.analyzers` and imports nothing of it; only this
shim reaches up, by name and on use, and it goes in the next release.
"""

import importlib
import warnings

warnings.warn("keras_lrp.io.inputs moved to keras_lrp.analyzers.inputs; the old name goes in "
              "the next release.", DeprecationWarning, stacklevel=2)

#: Where the names went.
NEW_MODULE = "keras_lrp.analyzers.inputs"
#: The names the old module had, each now in :data:`NEW_MODULE`.
MOVED = ("as_arrays", "is_batch_stream", "slices", "stream")


def __getattr__(name: str):
    """The new module's ``name`` (one of :data:`MOVED`), loaded on first use."""
    if name not in MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(NEW_MODULE), name)
    globals()[name] = value
    return value
