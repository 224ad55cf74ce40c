"""Randomisation metrics: does the explanation change with the model's weights (:class:`MPRT`)
or with the explained class (:class:`RandomLogit`)? Both follow Quantus 0.6; its similarity
functions are written in NumPy: :func:`spearman` (``scipy.stats.spearmanr``) and :func:`ssim`
(``skimage.metrics.structural_similarity`` as Quantus calls it)."""

from __future__ import annotations

import math
from typing import Callable, List, Optional

import numpy as np

from keras_lrp.analyzers.inputs import is_batch_stream
from keras_lrp.metrics.base import Explainer, Layout, Metric, prepare_relevance
from keras_lrp.metrics.similarity import pearson, rankdata, spearman, ssim  # noqa: F401

# -- re-initialising a layer -----------------------------------------------------------------
#: A variable's initializer keyword where it is not ``<variable name>_initializer``.
_INITIALIZER_KEYS = {"recurrent_kernel": "recurrent_initializer",
                     "depthwise_kernel": "depthwise_initializer",
                     "pointwise_kernel": "pointwise_initializer"}


def _fans(shape, input_axes=None, output_axes=None):
    """Keras' ``compute_fans``."""
    if input_axes is not None and output_axes is not None:
        return (int(np.prod([shape[i] for i in input_axes])),
                int(np.prod([shape[i] for i in output_axes])))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    field = int(np.prod(shape[:-2]))
    return shape[-2] * field, shape[-1] * field


def _truncated(rng, mean, stddev, shape):
    """Normal draws, those beyond two standard deviations drawn again (Keras' truncation)."""
    out = rng.normal(0.0, 1.0, shape)
    while (bad := np.abs(out) > 2).any():
        out[bad] = rng.normal(0.0, 1.0, int(bad.sum()))
    return mean + stddev * out


def _draw(init, shape, rng):
    """New values from the Keras initializer ``init``, drawn with ``rng`` (NumPy, so that every
    backend draws the same) for the random initializers of keras.initializers; others are
    called (with a seed from ``rng`` where they take one)."""
    import keras

    ki = keras.initializers
    if isinstance(init, ki.VarianceScaling):
        fan_in, fan_out = _fans(shape, getattr(init, "input_axes", None),
                                getattr(init, "output_axes", None))
        n = {"fan_in": fan_in, "fan_out": fan_out}.get(init.mode, (fan_in + fan_out) / 2.0)
        scale = init.scale / max(1.0, n)
        if init.distribution == "truncated_normal":
            return _truncated(rng, 0.0, math.sqrt(scale) / 0.87962566103423978, shape)
        if init.distribution == "untruncated_normal":
            return rng.normal(0.0, math.sqrt(scale), shape)
        limit = math.sqrt(3.0 * scale)
        return rng.uniform(-limit, limit, shape)
    if isinstance(init, ki.TruncatedNormal):
        return _truncated(rng, init.mean, init.stddev, shape)
    if isinstance(init, ki.RandomNormal):
        return rng.normal(init.mean, init.stddev, shape)
    if isinstance(init, ki.RandomUniform):
        return rng.uniform(init.minval, init.maxval, shape)
    config = init.get_config()
    if "seed" in config:
        init = type(init).from_config({**config, "seed": int(rng.integers(2 ** 31 - 1))})
    return keras.ops.convert_to_numpy(init(shape))


def _initializer(layer, variable):
    """The initializer of ``variable`` from its layer's config; a Glorot uniform kernel, ones
    for scales and variances, zeros otherwise where the config names none."""
    import keras

    name = variable.name.split("/")[-1].split(":")[0]
    spec = layer.get_config().get(_INITIALIZER_KEYS.get(name, f"{name}_initializer"))
    if spec is not None:
        return keras.initializers.get(spec)
    if name in ("gamma", "scale", "moving_variance"):
        return keras.initializers.Ones()
    return keras.initializers.GlorotUniform() if len(variable.shape) >= 2 else \
        keras.initializers.Zeros()


def reinitialise(layer, rng: np.random.Generator) -> List[np.ndarray]:
    """New weights for ``layer`` (``get_weights()`` order): each variable drawn again from the
    initializer the layer's config names for it (``kernel_initializer``, …), with ``rng`` —
    what Keras does when it builds the layer, as PyTorch's ``reset_parameters()`` is for
    Quantus. MPRT's default ``randomise``."""
    return [np.asarray(_draw(_initializer(layer, v), tuple(v.shape), rng), dtype=v.dtype)
            for v in layer.weights]


def randomisable_layers(model) -> list:
    """The layers with weights, first to last, nested models' layers in place of the model
    (as Quantus randomises the PyTorch modules that have ``reset_parameters``)."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(randomisable_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def _keras_model(model):
    import keras

    inner = getattr(model, "model", None)  # a keras-lrp analyzer
    model = inner if isinstance(inner, keras.Model) else model
    if not isinstance(model, keras.Model):
        raise TypeError(f"MPRT re-initialises the model's layers: give a Keras model (or a "
                        f"keras-lrp analyzer of one); got {type(model).__name__}.")
    return model


def _index_config(config):
    """An analyzer config with ``neuron_selection_mode="index"`` (wrappers: their inner one)."""
    config = dict(config)
    if "wrapper" in config:
        config["analyzer"] = _index_config(config["analyzer"])
    else:
        config["kwargs"] = {**config.get("kwargs", {}), "neuron_selection_mode": "index"}
    return config


def explainer_on(explain, model) -> Explainer:
    """``explain`` for ``model``: a keras-lrp analyzer made again for it (built once, from its
    ``get_config()``, in index mode), or a callable ``explain(model, x, targets)`` with the
    model bound."""
    from keras_lrp.analyzers.base import Analyzer
    from keras_lrp.analyzers.names import from_config

    if isinstance(explain, Analyzer):
        try:
            return Explainer(from_config(_index_config(explain.get_config()), model))
        except ValueError as err:
            raise ValueError(f"MPRT makes the analyzer again for each randomised model from its "
                             f"get_config(), which failed ({err}); make it with "
                             "keras_lrp.create_analyzer, or give explain as a callable "
                             "(model, x, targets) → relevance.") from err
    if not callable(explain):
        raise TypeError(f"explain must be a keras-lrp analyzer or a callable (model, x, targets)"
                        f" → relevance; got {type(explain).__name__}.")
    return Explainer(lambda x, t: explain(model, x, t))


def _layout(x) -> Layout:
    x = np.asarray(x)  # token ids are never perturbed here: any baseline id does
    return Layout(x, token_baseline=0 if np.issubdtype(x.dtype, np.integer) else None)


def _scores_model(model, explain):
    """For :class:`Scores`: the analyzer ``explain`` of this very Keras model where there is one
    (no second build; the gradient model Scores makes of a Keras model refuses token ids)."""
    from keras_lrp.analyzers.base import Analyzer

    return explain if isinstance(explain, Analyzer) and explain.model is model else model


def _flat(metric, x, r) -> np.ndarray:
    """The relevance per feature, ``abs`` and ``normalise`` as ``metric`` says: (N, P)."""
    layout = _layout(x)
    return prepare_relevance(r, layout, metric.normalise, metric.abs).reshape(len(x), -1)


def _similarity(func, a, b, n) -> np.ndarray:
    out = np.asarray(func(a, b), dtype=np.float64).reshape(-1)
    if out.shape != (n,):
        raise ValueError(f"similarity_func returned shape {out.shape} for {n} pairs of maps; it "
                         "must take two (N, P) arrays and return N values.")
    return out


LAYER_ORDERS = ("top_down", "bottom_up", "independent")


class MPRT(Metric):
    """The Model Parameter Randomisation Test (Adebayo, Gilmer, Muelly, Goodfellow, Hardt and
    Kim, "Sanity Checks for Saliency Maps", NeurIPS 2018), as Quantus 0.6's ``MPRT``.

    The layers with weights are re-initialised one at a time, cascading from the output back
    (``layer_order="top_down"``) or from the input on (``"bottom_up"``), or one alone
    (``"independent"``); after each step the model is explained again and compared with ``a``::

        MPRT_l(x) = sim(a(x), a_{θ_l}(x))     sim = Spearman's rank correlation by default

    on the (``abs``, ``normalise``-d) relevance per feature; lower is better (a sane explanation
    changes). Returns (N, L): a column per randomised layer (:attr:`layer_names`);
    :meth:`per_sample` averages them. :attr:`original_similarity`: sim(a, the original model's
    explanation).

    A clone of the model (``clone_model`` + its weights) is randomised, never the user's.
    ``explain``: a keras-lrp analyzer, made again (one build) for the clone after each step from
    its ``get_config()``, or a callable ``explain(model, x, targets)`` (Quantus' order). Each
    explanation is one call on the whole batch.

    Args:
        similarity_func: ``(a, b) → (N,)`` on (N, P) arrays; default :func:`spearman`.
        layer_order: "top_down", "bottom_up" or "independent".
        seed: the draws' seed; layer i (counted from the input) draws from
            ``np.random.default_rng((seed, i))``, so a layer gets the same weights in every order.
        return_average_correlation, return_last_correlation: :meth:`per_sample` gives the mean
            over the layers (default) or the last one.
        skip_layers: explain only the last step's (fully randomised) model: one column.
        abs, normalise: Quantus' pre-processing of both relevances (default both True).
        randomise: ``(layer, rng) → new weights`` (``get_weights()`` order); default
            :func:`reinitialise`, the layer's own Keras initializers drawn again.

    Differs from Quantus: Quantus' PyTorch models are re-initialised by ``reset_parameters()``
    (PyTorch's own initialisation, after ``torch.manual_seed(seed + 1)``); its Keras models are
    cloned *without* their weights (``clone_model``), so its "top_down" starts from an
    entirely re-initialised model, and a layer's weights are permuted along their first axis.
    Here a layer gets its Keras initializers' draws. Quantus' ``return_average_correlation``
    averages the original model's similarity (≈ 1) in with the layers' (it skips a key "orig"
    that is named "original"); :meth:`per_sample` averages the randomised layers only.
    Multi-channel images are compared per pixel (summed over channels), Quantus' per value.
    """

    higher_is_better = False
    category = "randomisation"
    needs_explain = True

    def __init__(self, similarity_func: Optional[Callable] = None, layer_order: str = "top_down",
                 seed: int = 42, return_average_correlation: bool = False,
                 return_last_correlation: bool = False, skip_layers: bool = False,
                 abs: bool = True, normalise: bool = True,
                 randomise: Optional[Callable] = None):
        if layer_order not in LAYER_ORDERS:
            raise ValueError(f"layer_order must be one of {LAYER_ORDERS}; got {layer_order!r}.")
        if return_average_correlation and return_last_correlation:
            raise ValueError("return_average_correlation and return_last_correlation exclude "
                             "each other: set one of them.")
        if return_average_correlation and skip_layers:
            raise ValueError("return_average_correlation averages over the layers, which "
                             "skip_layers leaves out: set one of them.")
        self.similarity_func = similarity_func or spearman
        self.layer_order = layer_order
        self.seed = seed
        self.return_average_correlation = return_average_correlation
        self.return_last_correlation = return_last_correlation
        self.skip_layers = skip_layers
        self.abs = abs
        self.normalise = normalise
        self.randomise = randomise or reinitialise
        self.layer_names: List[str] = []
        self.original_similarity = None

    def __call__(self, model, x, y=None, a=None, s=None, explain=None, **kwargs) -> np.ndarray:
        from keras_lrp.analyzers.base import Analyzer

        if is_batch_stream(x):  # one batch at a time, each a call of its own
            return self.stream(model, x, y, a=a, s=s, explain=explain, **kwargs)
        keras_model = _keras_model(model)
        if explain is None:
            raise ValueError("MPRT explains each randomised model again: give explain (a "
                             "keras-lrp analyzer or a callable (model, x, targets) → relevance).")
        first = explain if isinstance(explain, Analyzer) else explainer_on(explain,
                                                                          keras_model).fn
        return super().__call__(_scores_model(model, explain), x, y, a=a, s=s, explain=first,
                                model_explain=explain, keras_model=keras_model, **kwargs)

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None,
                 keras_model=None, model_explain=None, **kwargs) -> np.ndarray:
        import keras

        n, reference = len(x), _flat(self, x, a)
        self.original_similarity = _similarity(self.similarity_func, reference,
                                               _flat(self, x, explainer(x, targets)), n)
        original, clone = keras_model.get_weights(), keras.models.clone_model(keras_model)
        clone.set_weights(original)
        if not (layers := randomisable_layers(clone)):
            raise ValueError(f"Model {keras_model.name!r} has no layer with weights to "
                             "randomise.")
        index = {id(layer): i for i, layer in enumerate(layers)}
        order = layers[::-1] if self.layer_order == "top_down" else layers
        values, self.layer_names = [], []
        for step, layer in enumerate(order):
            if self.layer_order == "independent":
                clone.set_weights(original)
            self._set(layer, self.randomise(layer, np.random.default_rng((self.seed,
                                                                          index[id(layer)]))))
            if self.skip_layers and step < len(order) - 1:
                continue
            other = explainer_on(model_explain, clone)(x, targets)
            values.append(_similarity(self.similarity_func, reference, _flat(self, x, other), n))
            self.layer_names.append(layer.name)
        return np.stack(values, axis=1)

    @staticmethod
    def _set(layer, weights) -> None:
        old = layer.get_weights()
        new = [np.asarray(w) for w in weights]
        if [w.shape for w in new] != [w.shape for w in old]:
            raise ValueError(f"randomise returned weights of shapes {[w.shape for w in new]} "
                             f"for layer {layer.name!r}, whose weights have shapes "
                             f"{[w.shape for w in old]}.")
        layer.set_weights([w.astype(o.dtype) for w, o in zip(new, old)])

    def per_sample(self, values: np.ndarray) -> np.ndarray:
        """The mean over the randomised layers (``return_last_correlation``: the last one)."""
        values = np.asarray(values, dtype=np.float64)
        return values[:, -1] if self.return_last_correlation else values.mean(axis=1)


class RandomLogit(Metric):
    """The Random Logit test (Sixt, Granz and Landgraf, "When Explanations Lie: Why Many
    Modified BP Attributions Fail", ICML 2020), as Quantus 0.6's ``RandomLogit``.

    The explanation of the label y is compared with that of a class ŷ ≠ y drawn uniformly from
    the other ``num_classes - 1``::

        RandomLogit(x) = sim(a_y(x), a_ŷ(x))     sim = SSIM by default (:func:`ssim`)

    on the (``abs``, ``normalise``-d) relevance per feature, flattened. An explanation that
    explains the class differs between classes: lower is better. Returns (N,) values; the
    classes drawn are kept in :attr:`y_off` (pass ``y_off=`` to the call to give them).

    Args:
        similarity_func: ``(a, b) → (N,)`` on (N, P) arrays; default :func:`ssim`.
        num_classes: the classes to draw from (default: the model's outputs; Quantus: 1000).
        seed: seed of the draw (``np.random.default_rng``).
        abs, normalise: Quantus' pre-processing of both relevances (default False, True).

    Differs from Quantus: Quantus divides the relevance by its maximum over the whole batch (of
    ``batch_size``, default 64) — and the given ``a`` over the whole data set — so a sample's
    value depends on the others; here each map is divided by its own maximum (Quantus'
    numbers with ``batch_size=1``). Quantus draws with ``np.random.seed(seed)`` again for
    every batch. Like Quantus, SSIM is taken on the flattened map (windows of 7 consecutive
    values, crossing an image's row ends), not on the 2-D image as in the paper.
    """

    higher_is_better = False
    category = "randomisation"
    needs_explain = True

    def __init__(self, similarity_func: Optional[Callable] = None,
                 num_classes: Optional[int] = None, seed: int = 42, abs: bool = False,
                 normalise: bool = True):
        self.similarity_func = similarity_func or ssim
        self.num_classes = num_classes
        self.seed = seed
        self.abs = abs
        self.normalise = normalise
        self.y_off = None

    def __call__(self, model, x, y=None, a=None, s=None, explain=None, **kwargs) -> np.ndarray:
        if is_batch_stream(x):  # one batch at a time, each a call of its own
            return self.stream(model, x, y, a=a, s=s, explain=explain, **kwargs)
        return super().__call__(_scores_model(model, explain), x, y, a=a, s=s, explain=explain,
                                **kwargs)

    def evaluate(self, scores, x, targets, a, s=None, explainer=None, first=None, y_off=None,
                 **kwargs) -> np.ndarray:
        n = len(x)
        k = int(self.num_classes or first.shape[1])
        if k < 2 or targets.max() >= k:
            raise ValueError(f"RandomLogit draws another class among num_classes={k}: it needs "
                             f"at least 2 classes, more than the largest label "
                             f"{int(targets.max())}.")
        if y_off is None:
            drawn = np.random.default_rng(self.seed).integers(0, k - 1, n)
            y_off = drawn + (drawn >= targets)
        y_off = np.asarray(y_off).astype(np.int64).reshape(-1)
        if y_off.shape != (n,) or np.any(y_off == targets) or y_off.min() < 0 or \
                y_off.max() >= k:
            raise ValueError(f"y_off must be {n} classes in [0, {k}), each other than the "
                             f"sample's label; got {y_off.tolist()}.")
        self.y_off = y_off
        return _similarity(self.similarity_func, _flat(self, x, a),
                           _flat(self, x, explainer(x, y_off)), n)


