"""Metric names: the one place a name such as ``"PixelFlipping"`` becomes a
:class:`~keras_lrp.metrics.base.Metric` (:func:`resolve_metric`), for
:func:`~keras_lrp.analyzers.comparison.compare_methods`, ``keras-lrp compare --metrics`` and the
demo. It reads the registry of :mod:`keras_lrp.metrics` (``METRICS``, or ``get``)."""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Sequence

from keras_lrp.metrics.base import Metric


class UnknownMetric(ValueError):
    """A metric name that no registry knows (the message lists the known ones)."""


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def known_metrics() -> List[str]:
    """The metric names :func:`resolve_metric` accepts: the keys of ``keras_lrp.metrics.METRICS``
    (empty while this version has no registry)."""
    import keras_lrp.metrics as registry

    return sorted(getattr(registry, "METRICS", None) or {})


def resolve_metric(spec: Any) -> Metric:
    """A :class:`~keras_lrp.metrics.base.Metric` instance from what a user gives.

    The one place names are looked up: in the registry ``keras_lrp.metrics.METRICS`` (name →
    class, instantiated with the given keyword arguments), else with ``keras_lrp.metrics.get``.
    Names match ignoring case, spaces, ``_`` and ``-``: ``"PixelFlipping"``,
    ``"pixel_flipping"`` and ``"pixel-flipping"`` are one metric.

    Args:
        spec: a Metric instance, a Metric subclass, a name, or ``(name or class, kwargs)``.

    Raises:
        UnknownMetric: an unknown name (a ValueError; the known ones listed).
        ValueError: not a metric.
    """
    kwargs: Dict[str, Any] = {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        spec, kwargs = spec[0], dict(spec[1])
    if isinstance(spec, Metric):
        if kwargs:
            raise ValueError(f"{spec!r} is already a metric instance; give keyword arguments "
                             "with its class or name, not with an instance.")
        return spec
    if isinstance(spec, str):
        spec = _lookup(spec, kwargs)
        if isinstance(spec, Metric):
            return spec
    if isinstance(spec, type) and issubclass(spec, Metric):
        return spec(**kwargs)
    raise ValueError(f"A metric must be a keras_lrp.metrics.Metric instance or class, or a "
                     f"metric name; got {spec!r}.")


def _lookup(name: str, kwargs: Dict[str, Any]):
    """The registry's class (or instance) for ``name``; an instance made by ``get`` where the
    registry has no table."""
    import keras_lrp.metrics as registry

    table = getattr(registry, "METRICS", None) or {}
    matches = [k for k in table if _key(k) == _key(name)]
    if matches:
        found = table[name if name in table else matches[0]]
        if isinstance(found, Metric) and kwargs:
            raise ValueError(f"The registry holds metric {name!r} built; it takes no keyword "
                             f"arguments here (got {sorted(kwargs)}).")
        return found
    get = getattr(registry, "get", None)
    if callable(get) and not table:
        try:
            return get(name, **kwargs) if kwargs else get(name)
        except (KeyError, ValueError):
            pass
    known = ", ".join(sorted(table)) or "none (no metric is registered in this version)"
    raise UnknownMetric(f"Unknown metric {name!r}. Known metrics: {known}.")


def available_metrics(specs: Sequence[Any]) -> List[Metric]:
    """The metrics of ``specs`` (as :func:`resolve_metric` takes them) whose names are known
    here, the others left out: for a fixed list that works before and after a metric is
    registered (the demo's)."""
    out = []
    for spec in specs:
        try:
            out.append(resolve_metric(spec))
        except UnknownMetric:
            continue
    return out
