"""Attribution graphs: which lower-layer concepts a concept is built from (Concept Relevance
Propagation; Achtibat et al., "From attribution maps to human-understandable explanations
through Concept Relevance Propagation", Nature Machine Intelligence 5, 2023, Sec. "Concept
composition"; zennit-crp's ``AttributionGraph``).

For one sample, a root concept (layer l₀, channel k₀) and optionally an explained output c, the
edge from an upper node u = (l, k) to a lower channel j of a concept layer l' feeding l is the
conditional relevance of j given the root and u, summed over j's positions and normalised:

    R_j = Σ_p R^{l'}_{p, j}(x | θ),   θ = {y: c, l₀: [k₀], l: [k]},
    w(u → j) = R_j / (Σ_j' |R_j'| + 1e-10)   (``abs_norm=True``, zennit-crp's default),

with the relevance started at output c (``y`` given), or else at l₀ with its activation
(zennit-crp's ``start_layer``), masks not cutting parallel paths (``exclude_parallel=False``).
Each node keeps its ``width`` lower channels of largest w, recursively to ``depth`` levels; the
lower concept layers of a layer are the nearest concept layers on the paths into it. The
unnormalised weights are the channel sums of the relevance transfer (:func:`~keras_lrp.
concepts.relevances.transfer_matrix`) applied to the masked relevance at l: summed over
channel k's positions and j's, T R^l restricted to k.

A node's ``relevance`` is its channel's share of the root concept at its layer, the same
normalised sum under θ = {y: c, l₀: [k₀]} alone (the root: 1).
All passes of a graph run on one compiled relevance program (every concept layer is masked in
every condition, with all channels kept where a condition does not restrict it).
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from keras_lrp.concepts import conditions as cond_mod
from keras_lrp.concepts.conditional import Conditional
from keras_lrp.concepts.relevances import channel_relevance

Node = Tuple[str, int]


@dataclasses.dataclass
class AttributionGraph:
    """What :func:`attribution_graph` returns."""

    #: The root concept (layer, channel).
    root: Node
    #: (layer, channel, relevance) per node, the root first, then level by level.
    nodes: List[Tuple[str, int, float]]
    #: (upper node, lower node, relevance w(upper → lower)), per upper node by falling w.
    edges: List[Tuple[Node, Node, float]]
    #: The explained output (None: started at the root's layer with its activation).
    y: Optional[int] = None

    def weights(self) -> Dict[Tuple[Node, Node], float]:
        """(upper, lower) → w(upper → lower)."""
        return {(u, v): w for u, v, w in self.edges}

    def figure(self, title: Optional[str] = None):
        """A matplotlib (Agg) figure: one row per layer, from the root down; edges coloured by
        w on a colour bar, nodes labelled with channel and relevance."""
        from keras_lrp.concepts.graph_plot import plot_graph

        return plot_graph(self, title)

    def save(self, path: str, title: Optional[str] = None, dpi: int = 100) -> None:
        """Write :meth:`figure` as a PNG atomically."""
        from keras_lrp.plots.heatmap import save_figure

        save_figure(self.figure(title), path, dpi=dpi)


def concept_layers(crp: Conditional) -> List[str]:
    """The default concept layers: those of the analysis with a kernel (Dense, Conv, …)."""
    kernel = {node.outputs[0] for node in crp.analyzer.graph.nodes
              if getattr(node.layer, "kernel", None) is not None}
    return [name for name, tid in crp.tensors.items() if tid in kernel]


def input_layers(crp: Conditional, layer: str, layers: Sequence[str]) -> List[str]:
    """The concept layers of ``layers`` nearest to ``layer`` on the paths into it."""
    producer = {t: node for node in crp.analyzer.graph.nodes for t in node.outputs}
    named = {crp.tensors[name]: name for name in layers}
    found: List[str] = []
    seen, todo = set(), [crp.tensors[layer]]
    while todo:
        node = producer.get(todo.pop())
        for t in node.inputs if node is not None else ():
            if t in seen:
                continue
            seen.add(t)
            if t in named:
                found.append(named[t]) if named[t] not in found else None
            else:
                todo.append(t)
    return found


def _widths(width, depth) -> List[int]:
    if isinstance(width, (int, np.integer)) and not isinstance(width, bool):
        depth = 1 if depth is None else depth
        if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1:
            raise ValueError(f"depth must be an int >= 1 (levels below the root), got {depth!r}.")
        width = [int(width)] * int(depth)
    width = list(width)
    if depth is not None and len(width) != depth:
        raise ValueError(f"width has {len(width)} entries for depth={depth}: give one per level.")
    if not width or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1
                        for w in width):
        raise ValueError(f"width must be an int >= 1 or a non-empty list of them (one per "
                         f"level below the root), got {width!r}.")
    return [int(w) for w in width]


def attribution_graph(analyzer, x, layer: str, channel: int, y: Optional[int] = None,
                      width: Union[int, Sequence[int]] = 2, depth: Optional[int] = None,
                      layers: Optional[Sequence[str]] = None, abs_norm: bool = True,
                      axis: int = -1) -> AttributionGraph:
    """The attribution graph of concept (``layer``, ``channel``) for the one sample ``x``.

    Args:
        analyzer: an LRP analyzer or a :class:`~keras_lrp.concepts.Conditional`: one built with
            ``exclude_parallel=False`` is used as it is (its compiled program reused by every
            graph on the same layers); of another, its analyzer and axis are.
        x: one sample, batch first (1, …) (or a list of such arrays).
        layer, channel: the root concept.
        y: the explained output; None starts at ``layer`` with its activation.
        width: how many lower concepts each node keeps: an int (the same at each of ``depth``
            levels, default 1 level) or one int per level (zennit-crp's ``width=[4, 2]``).
        depth: how many levels below the root.
        layers: the concept layers (default: every layer with a kernel).
        abs_norm: divide each node's channel sums by their absolute sum (zennit-crp's default).
        axis: the channel axis (channels last by default).
    """
    if isinstance(analyzer, Conditional) and not analyzer.exclude_parallel:
        crp = analyzer  # reused with its compiled programs
    else:
        if isinstance(analyzer, Conditional):
            axis, analyzer = analyzer.axis, analyzer.analyzer
        crp = Conditional(analyzer, axis=axis, exclude_parallel=False)
    widths = _widths(width, depth)
    layers = concept_layers(crp) if layers is None else list(layers)
    for name in layers + [layer]:
        cond_mod.check_layer(name, crp.tensors, crp.analyzer.model_name)
    if layer not in layers:
        layers.append(layer)
    n_root = crp.channels(layer)
    cond_mod.parse([{layer: channel}], [layer], {layer: n_root}, 1)  # range check
    arrays = x if isinstance(x, (list, tuple)) else [x]
    if np.shape(arrays[0])[0] != 1:
        raise ValueError(f"attribution_graph explains one sample; x has {np.shape(arrays[0])[0]} "
                         "(give x[i:i + 1]).")
    below = _below(crp, layer, layers)
    if not below:
        raise ValueError(f"Layer {layer!r} has no concept layer below it among {layers}: "
                         "give layers= with lower layers.")
    full = {name: list(range(crp.channels(name))) for name in [layer] + below}

    def run(conds):
        conds = [{**full, **c, **({"y": y} if y is not None else {})} for c in conds]
        result = crp.attribute(x, conds, record=below,
                               start_layer=None if y is not None else layer)
        return {name: channel_relevance(result.relevances[name], axis=crp.axis if crp.axis < 0
                                        else crp.axis + 1, lead=2, abs_norm=abs_norm)[0]
                for name in below}

    root = (layer, int(channel))
    shares = {k: v[0] for k, v in run([{layer: [root[1]]}]).items()}
    nodes = [(layer, root[1], 1.0)]
    edges: List[Tuple[Node, Node, float]] = []
    done, level = {root}, [root]
    for w in widths:
        if not level:
            break
        rels = run([{layer: [root[1]], name: [k]} if name != layer else {layer: [k]}
                    for name, k in level])
        following: List[Node] = []
        for c, upper in enumerate(level):
            for lower_layer in input_layers(crp, upper[0], layers):
                r = rels[lower_layer][c]
                for j in np.argsort(-r, kind="stable")[:w]:
                    lower = (lower_layer, int(j))
                    edges.append((upper, lower, float(r[j])))
                    if lower not in done:
                        done.add(lower)
                        following.append(lower)
                        nodes.append((lower_layer, int(j), float(shares[lower_layer][j])))
        level = following
    return AttributionGraph(root, nodes, edges, y)


def _below(crp: Conditional, layer: str, layers: Sequence[str]) -> List[str]:
    """The concept layers upstream of ``layer`` (reached through its input layers)."""
    out: List[str] = []
    todo = [layer]
    while todo:
        for name in input_layers(crp, todo.pop(), layers):
            if name not in out:
                out.append(name)
                todo.append(name)
    return out


__all__ = ["AttributionGraph", "attribution_graph", "concept_layers", "input_layers"]
