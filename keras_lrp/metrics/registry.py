"""One name per metric, and the one place a name becomes a metric (:func:`get`), for Python,
``keras-lrp compare --metrics``, :func:`keras_lrp.report` and the demo.

A metric's name is its class name in snake case (``PixelFlipping`` → ``"pixel_flipping"``,
``ROAD`` → ``"road"``); :func:`get` ignores case, spaces, ``_`` and ``-``, so Quantus's class
names work as they are.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Sequence, Type

from keras_lrp.metrics.base import Metric, snake  # noqa: F401 - snake is the naming rule

#: snake-case name → metric class, filled by :func:`register` as the metric modules import.
METRICS: Dict[str, Type[Metric]] = {}


class UnknownMetric(ValueError):
    """A metric name the registry does not know (the message lists the known ones)."""


def register(cls: Type[Metric]) -> Type[Metric]:
    """Add ``cls`` to :data:`METRICS` under its name (a class decorator)."""
    key = cls.name
    if key in METRICS and METRICS[key] is not cls:
        raise ValueError(f"Two metrics are named {key!r}: {METRICS[key].__module__} and "
                         f"{cls.__module__}.")
    METRICS[key] = cls
    return cls


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def get(spec: Any, **kwargs: Any) -> Metric:
    """A metric from what a user gives: a :class:`~keras_lrp.metrics.base.Metric` instance (as
    it is), a Metric class or a name (made with ``kwargs``), or a ``(name or class, kwargs)``
    pair.

    Example:
        >>> get("pixel_flipping", features_in_step=4)
        >>> get("MaxSensitivity", nr_samples=10)
        >>> get(("road", {"noise": 0.0}))

    Raises:
        UnknownMetric: an unknown name (a ValueError listing the known ones).
        ValueError: keyword arguments with a built metric, or not a metric at all.
    """
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        spec, kwargs = spec[0], {**spec[1], **kwargs}
    if isinstance(spec, Metric):
        if kwargs:
            raise ValueError(f"get got a built metric ({type(spec).__name__}) and keyword "
                             f"arguments {sorted(kwargs)}; pass one or the other.")
        return spec
    if isinstance(spec, str):
        matches = [cls for key, cls in METRICS.items() if _key(key) == _key(spec)]
        if not matches:
            raise UnknownMetric(f"Unknown metric {spec!r}. Known metrics: "
                                f"{', '.join(sorted(METRICS))}.")
        spec = matches[0]
    if isinstance(spec, type) and issubclass(spec, Metric):
        return spec(**kwargs)
    raise ValueError(f"A metric must be a keras_lrp.metrics.Metric instance or class, or a "
                     f"metric name; got {spec!r}.")


def available(specs: Sequence[Any]) -> List[Metric]:
    """The metrics of ``specs`` (as :func:`get` takes them) whose names are known, unknown
    names left out: for a fixed list of names that a version may not all have."""
    out = []
    for spec in specs:
        try:
            out.append(get(spec))
        except UnknownMetric:
            continue
    return out
