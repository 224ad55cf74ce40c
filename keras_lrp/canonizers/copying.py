"""Copies of the user's layers for the analysis graph, made however the layer allows.

The analysis calls its own copies of the user's layers (so it never adds a node to them, and a
rewrite may change a copy). :func:`copy_layer` tries, in order:

1. for a preprocessing layer (``Normalization``, the lookups, ``Resizing``, ``Random*``…): a
   :func:`shallow_copy`, because their state is not all in weights (an adapted
   ``Normalization``'s mean and variance, a lookup's vocabulary);
2. the config round trip, on :func:`inference_config` (regularizers and constraints dropped: they
   play no part at inference, and a custom one may not serialise); keys the constructor refuses
   dropped (keras-hub's ViTEncoderBlock writes ``key_dim`` into a config it cannot read);
3. the constructor's arguments read off the layer's attributes of the same names (keras-hub's
   ``LlamaTransformerDecoder.get_config`` raises; ``Qwen3TransformerDecoder``'s omits
   ``head_dim``), passing ``name``/``dtype`` only where the constructor takes them;
4. else a :func:`shallow_copy` (a custom layer whose ``__init__`` takes no ``**kwargs`` and has
   no ``get_config``): the user's layer object in a new shell, sharing its weights.
"""

from __future__ import annotations

import inspect

import keras

from keras_lrp.core import types


def shallow_copy(layer):
    """A new object of ``layer``'s class with its attributes (weights and sublayers shared) and
    no graph nodes of its own: calling it symbolically adds nothing to the user's layer, and
    renaming it leaves the user's name alone. Marked ``_lrp_shares_weights`` (never reload)."""
    clone = object.__new__(type(layer))
    clone.__dict__.update(layer.__dict__)
    clone._inbound_nodes, clone._outbound_nodes = [], []
    clone._lrp_shares_weights = True
    return clone


def inference_config(layer) -> dict:
    """``layer.get_config()`` without regularizers and constraints (read on a shallow copy, so
    the user's layer keeps them)."""
    shell = shallow_copy(layer)
    for attr in [a for a in vars(shell) if a.endswith(("_regularizer", "_constraint"))]:
        object.__setattr__(shell, attr, None)
    config = shell.get_config()
    for key in [k for k in config if k.endswith(("_regularizer", "_constraint"))]:
        config[key] = None
    return config


def copy_layer(layer, dtype=None):
    """A copy of ``layer`` (see the module docstring); ``dtype`` overrides its dtype policy
    where the copy is made from a config or the constructor. Weights are loaded afterwards
    (except into a shallow copy, which shares them)."""
    if types.is_preprocessing_layer(layer):  # state beyond weights: copied shallow
        return shallow_copy(layer)
    try:
        config = inference_config(layer)
    except Exception:  # noqa: BLE001 - a broken get_config: rebuild from attributes
        config = None
    if config is not None:
        if dtype is not None and "dtype" in config:
            config["dtype"] = dtype
        try:
            return type(layer).from_config(config)
        except TypeError:
            accepted = _parameters(layer)
            base = set(inspect.signature(keras.layers.Layer.__init__).parameters)
            try:
                return type(layer).from_config(
                    {k: v for k, v in config.items()
                     if k in accepted or k in base or k == "dtype"})
            except TypeError:
                pass
    try:
        return copy_from_attributes(layer, dtype)
    except (TypeError, ValueError):
        return shallow_copy(layer)


def _parameters(layer):
    return inspect.signature(type(layer).__init__).parameters


def copy_from_attributes(layer, dtype=None):
    """``type(layer)(**arguments)`` with each constructor argument read off the attribute of
    the same name.

    Raises:
        ValueError: a required argument has no attribute of its name.
    """
    params = _parameters(layer)
    kwargs = {name: getattr(layer, name) for name, p in params.items()
              if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
              and hasattr(layer, name) and not isinstance(getattr(layer, name), property)}
    open_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    for key, value in (("name", layer.name),
                       ("dtype", layer.dtype_policy if dtype is None else dtype)):
        if key in params or open_kwargs:
            kwargs[key] = value
    missing = [name for name, p in params.items() if name not in kwargs and name != "self"
               and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if missing:
        raise ValueError(
            f"keras-lrp could not copy layer '{layer.name}' ({type(layer).__name__}): its "
            f"get_config round trip fails and it has no attribute for the constructor "
            f"argument(s) {', '.join(missing)}.")
    copy = type(layer)(**kwargs)
    if copy.name != layer.name:
        copy.name = layer.name
    return copy


__all__ = ["copy_from_attributes", "copy_layer", "inference_config",
           "shallow_copy"]
