"""One name per metric: the registry the CLI, the report and :func:`get` look names up in.

A metric's name is its class name in snake case (``PixelFlipping`` → ``"pixel_flipping"``,
``ROAD`` → ``"road"``); :func:`get` takes either spelling, so Quantus users can keep theirs.
"""

from __future__ import annotations

from typing import Any, Dict, Type

from keras_lrp.metrics.base import Metric, snake  # noqa: F401 - snake is the naming rule

#: snake-case name → metric class, filled by :func:`register` as the metric modules import.
METRICS: Dict[str, Type[Metric]] = {}


def register(cls: Type[Metric]) -> Type[Metric]:
    """Add ``cls`` to :data:`METRICS` under its snake-case class name (a class decorator)."""
    key = cls.name
    if key in METRICS and METRICS[key] is not cls:
        raise ValueError(f"Two metrics are named {key!r}: {METRICS[key].__module__} and "
                         f"{cls.__module__}.")
    METRICS[key] = cls
    return cls


def get(name: Any, **kwargs: Any) -> Metric:
    """The metric ``name`` (snake case or Quantus' class name) made with ``kwargs``; a
    :class:`~keras_lrp.metrics.base.Metric` instance is returned as it is.

    Example:
        >>> get("pixel_flipping", features_in_step=4)
        >>> get("MaxSensitivity", nr_samples=10)
    """
    if isinstance(name, Metric):
        if kwargs:
            raise ValueError(f"get got a built metric ({type(name).__name__}) and keyword "
                             f"arguments {sorted(kwargs)}; pass one or the other.")
        return name
    key = snake(str(name).strip().replace("-", "_").replace(" ", "_"))
    if key not in METRICS:
        raise ValueError(f"Unknown metric {name!r}. Known metrics: {', '.join(sorted(METRICS))}.")
    return METRICS[key](**kwargs)
