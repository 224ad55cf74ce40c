"""Several explanation methods on the same inputs, measured with the same metrics.

:func:`compare_methods` explains ``x`` with every method (analyzer names, ``(label, name,
kwargs)`` triples or built analyzers), evaluates every metric (:mod:`keras_lrp.metrics`) on every
method's relevance, and returns a :class:`Comparison`: the relevances, the per-sample metric
values with their mean and a bootstrap confidence interval, the mean perturbation curves, and,
for each method with an ignore-bias twin (``lrp.epsilon`` and ``lrp.epsilon_IB``), the difference
map R − R_IB and the share of relevance that moved (:func:`moved_share`). :func:`report` also
writes it as one self-contained HTML page (:func:`keras_lrp.plots.html.write_html`).

Example:
    >>> comparison = keras_lrp.report(model, x, ["lrp.epsilon", "lrp.epsilon_IB", "gradient"],
    ...                               metrics=[my_metric], labels=y, path="report.html")
    >>> print(comparison)                      # the metric table as text
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from keras_lrp.analyzers.base import Analyzer
from keras_lrp.core.statistics import bootstrap_ci, feature_map, moved_share
from keras_lrp.metrics.base import Scores
from keras_lrp.metrics.registry import get


# ------------------------------------------------------------------------------- results
@dataclasses.dataclass
class MetricResult:
    """One metric over every method.

    Attributes:
        name: the metric's name (its column title).
        higher_is_better: the metric's direction.
        values: method → (N,) per-sample values (``metric.per_sample`` of what it returned).
        curves: method → (steps,) mean over the samples of the curves it returned; empty for
            a metric with one number per sample.
        mean: method → mean of the finite per-sample values.
        ci: method → (low, high), the percentile bootstrap interval of the mean
            (:func:`bootstrap_ci`).
    """

    name: str
    higher_is_better: bool
    values: Dict[str, np.ndarray]
    curves: Dict[str, np.ndarray]
    mean: Dict[str, float]
    ci: Dict[str, Tuple[float, float]]

    def best(self) -> List[str]:
        """The methods with the best mean (more than one on a tie; none if all are NaN)."""
        means = {m: v for m, v in self.mean.items() if np.isfinite(v)}
        if not means:
            return []
        top = (max if self.higher_is_better else min)(means.values())
        return [m for m, v in means.items() if v == top]


@dataclasses.dataclass
class IBPair:
    """A method and its ignore-bias twin.

    Attributes:
        method, ib: the two methods' labels (with the bias, without).
        difference: R − R_IB per feature: (N, H, W) for images (channels summed), (N, T) for
            tokens, (N, F) for tabular inputs.
        moved: (N,) :func:`moved_share` of the two maps per sample.
        mean, ci: the moved share's mean and bootstrap interval.
    """

    method: str
    ib: str
    difference: np.ndarray
    moved: np.ndarray
    mean: float
    ci: Tuple[float, float]


@dataclasses.dataclass
class Comparison:
    """What :func:`compare_methods` found; ``str(comparison)`` is the metric table as text.

    Attributes:
        methods: the method labels, in the order given.
        relevances: label → relevance, shaped like ``x``.
        x: the inputs.
        labels: the true labels (N,), or None.
        predictions: (N,) the model's argmax.
        targets: (N,) the explained output per sample (``y``, or the predictions).
        metrics: metric name → :class:`MetricResult`, in the order given.
        pairs: the :class:`IBPair` of every method with an ignore-bias twin.
        token_names: id → word, for token inputs.
        bootstrap, confidence, seed: how the intervals were drawn.
        model_name: the model's name.
    """

    methods: List[str]
    relevances: Dict[str, np.ndarray]
    x: np.ndarray
    labels: Optional[np.ndarray]
    predictions: np.ndarray
    targets: np.ndarray
    metrics: Dict[str, MetricResult]
    pairs: List[IBPair]
    token_names: Optional[List[str]] = None
    bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0
    model_name: str = "model"

    def feature_map(self, method: str) -> np.ndarray:
        """The method's relevance per feature: (N, H, W) for images (channels summed), (N, T)
        for tokens (embedding summed), (N, F) for tabular inputs."""
        return feature_map(self.relevances[method], self.x)

    def table(self) -> str:
        """Methods × metrics, ``mean [low, high]``, the best per metric starred; then the IB
        pairs' moved shares."""
        if not self.metrics:
            return "\n".join([f"{len(self.methods)} methods, no metrics."] + [
                f"{p.method} vs {p.ib}: moved share {_interval(p.mean, p.ci)} (share of |R| "
                "that moved, 0 to 1)" for p in self.pairs])
        width = max([len(m) for m in self.methods] + [6])
        heads = [f"{r.name} ({'↑' if r.higher_is_better else '↓'})" for r in self.metrics.values()]
        lines = [f"{'method':<{width}}  " + "  ".join(f"{h:>26}" for h in heads)]
        for m in self.methods:
            cells = []
            for r in self.metrics.values():
                star = "*" if m in r.best() else " "
                cells.append(f"{_interval(r.mean[m], r.ci[m]):>25}{star}")
            lines.append(f"{m:<{width}}  " + "  ".join(cells))
        pct = round(100 * self.confidence)
        lines.append(f"mean [{pct}% bootstrap interval, {self.bootstrap} resamples] over "
                     f"{len(self.x)} samples; * best per metric.")
        for p in self.pairs:
            lines.append(f"{p.method} vs {p.ib}: moved share {_interval(p.mean, p.ci)} (share "
                         "of |R| that moved, 0 to 1)")
        return "\n".join(lines)

    __str__ = table


def _interval(mean: float, ci) -> str:
    if not np.isfinite(mean):
        return "–"
    if not np.all(np.isfinite(ci)):
        return f"{mean:.4g}"
    return f"{mean:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]"


# ------------------------------------------------------------------------------- methods
def _methods(methods, model, index_mode: bool) -> Dict[str, Any]:
    """label → analyzer (built) for every method spec."""
    import keras_lrp

    if isinstance(methods, Mapping):
        methods = [(label, spec) for label, spec in methods.items()]
    out: Dict[str, Any] = {}
    for spec in methods:
        label, kwargs = None, {}
        if isinstance(spec, tuple) and len(spec) == 3:
            label, spec, kwargs = spec
        elif isinstance(spec, tuple) and len(spec) == 2:
            label, spec = spec
        if isinstance(spec, str):
            options = dict(kwargs)
            if index_mode:
                options.setdefault("neuron_selection_mode", "index")
            analyzer = keras_lrp.create_analyzer(spec, model, **options)
            label = spec if label is None else label
        elif isinstance(spec, Analyzer):
            analyzer, label = spec, spec.name if label is None else label
            if index_mode and analyzer.neuron_selection_mode != "index":
                analyzer = analyzer.clone(neuron_selection_mode="index")
        else:
            raise ValueError(f"A method is an analyzer name, a (label, name, kwargs) triple, a "
                             f"(label, analyzer) pair or an analyzer; got {spec!r}.")
        if str(label) in out:
            raise ValueError(f"Method {label!r} is given twice; give each method a different "
                             "label, e.g. ('eps 0.1', 'lrp.epsilon', {'epsilon': 0.1}).")
        out[str(label)] = analyzer
    if len(out) == 0:
        raise ValueError("compare_methods needs at least one method.")
    return out


def _config(analyzer) -> Tuple[str, Dict[str, Any]]:
    config = analyzer.get_config() if hasattr(analyzer, "get_config") else {}
    return str(config.get("name", "")), dict(config.get("kwargs", {}))


def find_ib_pairs(analyzers: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """``(method, ib)`` label pairs: labels ``L`` and ``L + "_IB"``, or analyzers ``name`` and
    ``name + "_IB"`` with the same keyword arguments, or one analyzer and the same with
    ``bias=False`` added."""
    labels, pairs = list(analyzers), []
    configs = {k: _config(a) if a is not None else ("", {}) for k, a in analyzers.items()}
    for a in labels:
        for b in labels:
            (na, ka), (nb, kb) = configs[a], configs[b]
            twin = (b == a + "_IB" or (na and nb == na + "_IB" and ka == kb)
                    or (na and nb == na and ka.get("bias", True) is not False
                        and kb == {**ka, "bias": False}))
            if a != b and twin and not any(a in p or b in p for p in pairs):
                pairs.append((a, b))
    return pairs


# ------------------------------------------------------------------------------- the data step
def compare_methods(model, x, methods, metrics=None, y=None, labels=None,
                    bootstrap: int = 1000, seed: int = 0, token_names=None,
                    confidence: float = 0.95, ib_pairs=None, relevances=None,
                    batch_size: Optional[int] = None) -> Comparison:
    """Explain ``x`` with every method and evaluate every metric on every explanation.

    Args:
        model: the Keras model.
        x: the inputs (N, …): images, tabular features or token ids.
        methods: analyzer names (``"lrp.epsilon"``), ``(label, name, kwargs)`` triples (as
            :data:`keras_lrp.demos.digits.DEMO_ANALYZERS`), ``(label, analyzer)`` pairs, built
            analyzers (labelled by their name), or a dict label → name or analyzer.
        metrics: Metric instances or classes, names (:func:`keras_lrp.metrics.get`) or ``(name,
            kwargs)`` pairs; each is called ``metric(analyzer, x, targets, a=relevance,
            explain=analyzer)``. None: no metrics.
        y: the explained output per sample (an int or (N,) ints); None: the model's argmax.
        labels: the true labels (N,), for the report's ``true → predicted`` titles.
        bootstrap, seed, confidence: the intervals (:func:`bootstrap_ci`).
        token_names: id → word, for token id inputs (the report shows words).
        ib_pairs: ``[(method, ib), …]`` labels to compare; None: found by name
            (:func:`find_ib_pairs`).
        relevances: label → relevance already computed for these methods (and these targets);
            those methods are not run again.
        batch_size: analyze at most this many samples at once.

    Returns:
        A :class:`Comparison`.

    Raises:
        ValueError: an unknown method or metric, labels / y / token_names / relevances that do
            not fit x, a metric returning a shape other than (N,) or (N, steps).
    """
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise ValueError(f"x needs a batch axis and at least one sample; got shape {x.shape}.")
    n = len(x)
    analyzers = _methods(methods, model, index_mode=y is not None)
    metric_list = [get(m) for m in (metrics or [])]
    scores = Scores(next(iter(analyzers.values())))
    logits = scores(x)
    predictions = logits.argmax(axis=1)
    targets = predictions if y is None else np.broadcast_to(np.asarray(y), (n,)).astype(int)
    if labels is not None:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape != (n,):
            raise ValueError(f"labels has {labels.size} entries for {n} samples.")
    token_names = _check_tokens(token_names, x)
    relevances = dict(relevances or {})
    for label, analyzer in analyzers.items():
        if label not in relevances:
            selection = None if y is None else targets
            relevances[label] = analyzer.analyze(x, neuron_selection=selection,
                                                 batch_size=batch_size)
        relevances[label] = np.asarray(relevances[label])
        if relevances[label].shape[:x.ndim] != x.shape:
            raise ValueError(f"The relevance of {label!r} has shape {relevances[label].shape}, "
                             f"which does not fit x of shape {x.shape}.")
    results: Dict[str, MetricResult] = {}
    for metric in metric_list:
        name = _unique(metric.describe()["name"], results)
        results[name] = _evaluate(metric, name, analyzers, x, targets, relevances,
                                  bootstrap, seed, confidence)
    pairs = [_pair(a, b, relevances, x, bootstrap, seed, confidence)
             for a, b in (find_ib_pairs(analyzers) if ib_pairs is None else ib_pairs)]
    return Comparison(methods=list(analyzers), relevances=relevances, x=x, labels=labels,
                      predictions=predictions, targets=np.asarray(targets), metrics=results,
                      pairs=pairs, token_names=token_names, bootstrap=int(bootstrap),
                      confidence=confidence, seed=seed,
                      model_name=str(getattr(model, "name", "model")))


def _check_tokens(token_names, x):
    if token_names is None:
        return None
    token_names = [str(t) for t in token_names]
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError(f"token_names is for token id inputs; x holds {x.dtype}.")
    if x.size and (x.min() < 0 or x.max() >= len(token_names)):
        raise ValueError(f"x holds token id {int(x.max())}, but token_names has only "
                         f"{len(token_names)} entries (ids 0 to {len(token_names) - 1}).")
    return token_names


def _unique(name: str, taken) -> str:
    out, k = name, 2
    while out in taken:
        out, k = f"{name} ({k})", k + 1
    return out


def _evaluate(metric, name, analyzers, x, targets, relevances, bootstrap, seed, confidence):
    values, curves, mean, ci = {}, {}, {}, {}
    for label, analyzer in analyzers.items():
        try:
            raw = np.asarray(metric(analyzer, x, targets, a=relevances[label], explain=analyzer),
                             dtype=np.float64)
        except (ValueError, TypeError) as e:
            raise type(e)(f"metric {name!r} on method {label!r}: {e}") from e
        if raw.ndim not in (1, 2) or raw.shape[0] != len(x):
            raise ValueError(f"metric {name!r} returned shape {raw.shape} for {len(x)} samples; "
                             "a metric returns (N,) values or (N, steps) curves.")
        if raw.ndim == 2:
            curves[label] = np.nanmean(raw, axis=0) if np.isfinite(raw).any() else raw[0]
        values[label] = np.asarray(metric.per_sample(raw), dtype=np.float64).reshape(-1)
        mean[label], low, high = bootstrap_ci(values[label], bootstrap, seed, confidence)
        ci[label] = (low, high)
    return MetricResult(name, bool(metric.higher_is_better), values, curves, mean, ci)


def _pair(a, b, relevances, x, bootstrap, seed, confidence) -> IBPair:
    for label in (a, b):
        if label not in relevances:
            raise ValueError(f"IB pair ({a!r}, {b!r}): {label!r} is not one of the methods.")
    ra, rb = feature_map(relevances[a], x), feature_map(relevances[b], x)
    moved = moved_share(ra, rb)
    mean, low, high = bootstrap_ci(moved, bootstrap, seed, confidence)
    return IBPair(a, b, ra - rb, moved, mean, (low, high))


def report(model, x, methods, metrics=None, path="report.html", title: Optional[str] = None,
           samples: Optional[Sequence[int]] = None, **kwargs) -> Comparison:
    """:func:`compare_methods`, then :func:`keras_lrp.plots.html.write_html` to ``path``.

    Args:
        model, x, methods, metrics: see :func:`compare_methods`.
        path: the HTML file (written atomically; its folder must exist).
        title: the page's title (default: the model's name).
        samples: the indices of the samples the figures show (default: one per class when
            ``labels`` are given, else the first 8).
        **kwargs: the other arguments of :func:`compare_methods` (``y``, ``labels``,
            ``bootstrap``, ``seed``, ``token_names``, …).

    Returns:
        The :class:`Comparison`.

    Example:
        >>> keras_lrp.report(model, x, ["lrp.epsilon", "lrp.epsilon_IB"], labels=y)
    """
    from keras_lrp.plots.html import write_html

    comparison = compare_methods(model, x, methods, metrics, **kwargs)
    write_html(comparison, path, title=title, samples=samples)
    return comparison
