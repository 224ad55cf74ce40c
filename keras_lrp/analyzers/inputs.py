"""Checking and batching what users pass to ``analyze``.

Every check runs before any TensorFlow work and names the input, the problem and the remedy.
Large inputs are processed batch by batch: arrays are sliced, and a ``tf.data.Dataset``, a
generator or any iterable of batches is consumed one batch at a time, so memory is bounded by
the batch (plus the results kept).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, List, Optional, Sequence

import numpy as np


def is_batch_stream(data) -> bool:
    """True for a tf.data.Dataset, generator or other iterable of batches (not an array/list)."""
    if isinstance(data, (np.ndarray, list, tuple, dict)) or hasattr(data, "__array__"):
        return False
    return hasattr(data, "__iter__") or hasattr(data, "__next__")


def as_arrays(x, specs: Sequence[Any], model_name: str,
              allow_nonfinite: bool = False) -> List[np.ndarray]:
    """The model's inputs as NumPy arrays of the model's dtypes, checked.

    Raises:
        ValueError: wrong number of inputs, rank, shape or dtype, different batch sizes, or NaN
            or inf values (unless ``allow_nonfinite``).
    """
    if isinstance(x, dict):  # keras-hub's models take {"token_ids": …, "padding_mask": …}
        names = [s.name for s in specs]
        wrong = sorted(set(x) - set(names))
        missing = [n for n in names if n not in x]
        if wrong or missing:
            raise ValueError(f"Model '{model_name}' has the inputs {', '.join(names)}; the dict "
                             f"passed to it " + (f"lacks {', '.join(missing)}" if missing else "")
                             + (" and " if wrong and missing else "")
                             + (f"has the unknown key(s) {', '.join(wrong)}" if wrong else "")
                             + ".")
        x = [x[n] for n in names]
    # For a single-input model, a nested list of numbers is one array of samples; a list of
    # arrays is a list of inputs (and an error if it has more than one).
    single_nested = (len(specs) == 1 and isinstance(x, (list, tuple))
                     and not all(hasattr(e, "shape") for e in x))
    xs = [x] if single_nested or not isinstance(x, (list, tuple)) else list(x)
    if len(xs) != len(specs):
        raise ValueError(f"Model '{model_name}' has {len(specs)} inputs "
                         f"({', '.join(s.name for s in specs)}); got {len(xs)} arrays. Pass a "
                         "list with one array per input, in that order.")
    arrays = []
    for arr, spec in zip(xs, specs):
        arr = np.asarray(arr)
        expected = tuple(spec.shape)
        if arr.dtype.kind not in "fiub":
            raise ValueError(f"Input '{spec.name}' must hold numbers; got an array of dtype "
                             f"{arr.dtype}. Convert it, e.g. np.asarray(x, dtype='float32').")
        if arr.ndim != len(expected) or any(e is not None and e != a
                                            for e, a in zip(expected[1:], arr.shape[1:])):
            raise ValueError(f"Input '{spec.name}' expects arrays of shape "
                             f"{('batch',) + expected[1:]}, got shape {arr.shape}.")
        if arr.dtype.kind == "f" and not allow_nonfinite:
            bad = ~np.isfinite(arr)
            if bad.any():
                first = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"Input '{spec.name}' holds {int(np.isnan(arr).sum())} NaN and "
                    f"{int(np.isinf(arr).sum())} infinite values (the first at index {first}). "
                    "Relevance of such inputs is meaningless; clean the data, or pass "
                    "allow_nonfinite=True to analyze anyway.")
        arrays.append(arr.astype(spec.dtype, copy=False))
    batches = {a.shape[0] for a in arrays}
    if len(batches) > 1:
        raise ValueError(f"The inputs of model '{model_name}' have different batch sizes "
                         f"{[a.shape[0] for a in arrays]}; give every input the same number of "
                         "samples.")
    return arrays


def slices(arrays: List[np.ndarray], batch_size: Optional[int]) -> Iterator[List[np.ndarray]]:
    """Consecutive batches of ``batch_size`` samples (all at once if None)."""
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer))
                                   or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    n = arrays[0].shape[0]
    if batch_size is None or batch_size >= n:
        yield arrays
        return
    for start in range(0, n, batch_size):
        yield [a[start:start + batch_size] for a in arrays]


def stream(data: Iterable) -> Iterator[Any]:
    """The model inputs of each batch of a Dataset/generator: ``x``, or ``x`` of ``(x, y, …)``.

    A tuple batch is read as ``(x, y, …)``, as Keras' ``fit`` does; for a multi-input model,
    yield ``((x1, x2), y)`` or ``[x1, x2]``.
    """
    for batch in data:
        if isinstance(batch, tuple) and len(batch) >= 2:
            batch = batch[0]  # (x, y) or (x, y, sample_weight), as Keras' fit accepts
        if isinstance(batch, dict):
            raise ValueError("Batches given as dicts are not supported; yield x or (x, y), with "
                             "x an array or a list of arrays in the model's input order.")
        # x of a multi-input model comes as a list or (from tf.data) a tuple of arrays
        yield ([np.asarray(b) for b in batch] if isinstance(batch, (list, tuple))
               else np.asarray(batch))


__all__ = ["as_arrays", "is_batch_stream", "slices", "stream"]
