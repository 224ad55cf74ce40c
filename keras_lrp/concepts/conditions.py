"""Conditions of Concept Relevance Propagation: which channels of which layers, and which
output, each conditional heatmap explains; checked against the analysis and made into the
arrays the relevance program reads (:mod:`keras_lrp.concepts.conditional`).

A condition is a dict, as in zennit-crp: ``{"y": 3, "conv2d_1": [5, 7]}`` explains output 3
with the relevance at layer ``conv2d_1`` kept only at channels 5 and 7 (an int stands for one
channel). ``"y"`` may also hold one output per sample (e.g. the labels), or be left out (or
``None``): the largest output of each sample is explained.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

#: The key of a condition naming the explained output (zennit-crp's ``MODEL_OUTPUT_NAME``).
OUTPUT_KEY = "y"


def layer_tensors(graph) -> Dict[str, int]:
    """Layer name → the id of its output tensor in the canonized graph, named as
    ``analyze(x, layerwise=True)`` names them (a shared layer's k-th call is ``name_k``)."""
    names: Dict[str, int] = {}
    calls: Dict[str, int] = {}
    for node in graph.nodes:
        k = calls.get(node.layer.name, 0)
        calls[node.layer.name] = k + 1
        names[f"{node.layer.name}_{k}" if k else node.layer.name] = node.outputs[0]
    return names


def related(graph, tid: int) -> set:
    """The tensors on a path through tensor ``tid``: its ancestors, itself and its
    descendants (the rest lies on paths parallel to it)."""
    producer = {t: node for node in graph.nodes for t in node.outputs}
    readers = graph.consumers()
    out, todo = {tid}, [tid]
    while todo:  # ancestors
        node = producer.get(todo.pop())
        for t in node.inputs if node is not None else ():
            if t not in out:
                out.add(t)
                todo.append(t)
    down, todo = {tid}, [tid]
    while todo:  # descendants
        for node in readers.get(todo.pop(), ()):
            for t in node.outputs:
                if t not in down:
                    down.add(t)
                    todo.append(t)
    return out | down


def check_layer(name: str, tensors: Mapping[str, int], model_name: str) -> int:
    """The tensor id of layer ``name``; a ValueError listing the layer names if there is none."""
    if not isinstance(name, str) or name not in tensors:
        raise ValueError(f"Model '{model_name}' has no layer named {name!r} in its analysis; "
                         f"its layers are: {', '.join(tensors)}.")
    return tensors[name]


def channel_axis(name: str, shape: Sequence[Optional[int]], axis: int) -> int:
    """``axis`` as a non-negative axis of a layer output shaped ``shape`` (batch first)."""
    rank = len(shape)
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or \
            not -rank < axis < rank or axis % rank == 0:
        raise ValueError(f"axis={axis!r} is not a channel axis of layer {name!r}, whose output "
                         f"has shape {tuple(shape)}: give an axis in [1, {rank}) or "
                         f"[-{rank - 1}, -1] (not the batch axis).")
    axis = int(axis) % rank
    if shape[axis] is None:
        raise ValueError(f"Axis {axis} of layer {name!r} (output shape {tuple(shape)}) has no "
                         "fixed size: it cannot hold channels.")
    return axis


def parse(conditions: Sequence[Mapping[str, Any]], layers: Sequence[str],
          channels: Mapping[str, int], outputs: int, start_layer: Optional[str] = None,
          samples: int = 1):
    """``(targets, masks)`` for ``conditions``: the explained output per sample and condition
    (N, C) (-1: the largest; ``"y"`` is an int, or one int per sample) and, per layer of
    ``layers``, a (C, channels) float32 mask (ones where a condition names no channel of
    that layer)."""
    if isinstance(conditions, Mapping) or not len(conditions):
        raise ValueError("conditions must be a non-empty list of dicts, e.g. "
                         "[{'y': 3, 'conv2d': [5]}].")
    targets = np.full((samples, len(conditions)), -1, "int32")
    masks = {name: np.ones((len(conditions), channels[name]), "float32") for name in layers}
    for c, cond in enumerate(conditions):
        if not isinstance(cond, Mapping):
            raise ValueError(f"Condition {c} is {cond!r}; a condition is a dict from layer "
                             f"name (or {OUTPUT_KEY!r}) to channel indices.")
        for key, value in cond.items():
            if key == OUTPUT_KEY:
                if start_layer is not None and value is not None:
                    raise ValueError(f"Condition {c} names an output ({OUTPUT_KEY}={value!r}), "
                                     f"but the relevance starts at layer {start_layer!r} "
                                     "(start_layer): leave 'y' out.")
                if value is not None and np.ndim(value) > 0 and \
                        np.shape(value) != (samples,):
                    raise ValueError(f"Condition {c}: {OUTPUT_KEY} has shape {np.shape(value)} "
                                     f"for {samples} samples; give one int, or one per sample.")
                if value is not None:
                    targets[:, c] = [_index(v, outputs, f"condition {c}: {OUTPUT_KEY}",
                                            "the explained output", "outputs")
                                     for v in np.broadcast_to(np.asarray(value, object),
                                                              (samples,))]
                continue
            masks[key][c] = 0.0
            for i in np.atleast_1d(np.asarray(value)).reshape(-1):
                masks[key][c, _index(i, channels[key], f"condition {c}: channel",
                                     f"layer {key!r}", "channels")] = 1.0
    return targets, masks


def _index(value, n: int, what: str, owner: str, unit: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or \
            not 0 <= value < n:
        shown = int(value) if isinstance(value, np.integer) else repr(value)
        raise ValueError(f"{what} {shown} is out of range: {owner} has {n} {unit} "
                         f"(indices 0 to {n - 1}).")
    return int(value)


def condition_layers(conditions) -> List[str]:
    """The layer names the conditions mention, in first-mention order (``"y"`` left out)."""
    names: List[str] = []
    for cond in conditions if not isinstance(conditions, Mapping) else ():
        for key in cond if isinstance(cond, Mapping) else ():
            if key != OUTPUT_KEY and key not in names:
                names.append(key)
    return names


__all__ = ["OUTPUT_KEY", "channel_axis", "check_layer", "condition_layers", "layer_tensors",
           "parse", "related"]
