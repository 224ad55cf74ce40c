"""The figure of an :class:`~keras_lrp.concepts.graph.AttributionGraph` (matplotlib, Agg).

One row per layer, the root's at the top and lower layers below (in the order the graph reached
them); each node a disc labelled with its channel, its relevance (its share of the root's
relevance at its layer) in grey beside it; each edge a line from the upper
node to the lower one, coloured by its weight w on a red (w > 0) / blue (w < 0) scale shown by
a colour bar, its width growing with |w|.
"""

from __future__ import annotations

from typing import Dict, Optional

from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize

from keras_lrp.plots.heatmap import _bwr_colormap, new_figure


def plot_graph(graph, title: Optional[str] = None):
    """The figure of ``graph`` (see the module docstring)."""
    rows: Dict[str, list] = {}
    for layer, channel, rel in graph.nodes:
        rows.setdefault(layer, []).append((channel, rel))
    width = max(len(v) for v in rows.values())
    fig = new_figure(max(4.0, 1.1 * width + 1.6), 1.3 * len(rows) + 0.9)
    ax = fig.add_axes([0.02, 0.04, 0.78, 0.84 if title else 0.92])
    pos = {}
    for r, (layer, items) in enumerate(rows.items()):
        for i, (channel, _rel) in enumerate(items):
            pos[(layer, channel)] = ((i + 0.5) * width / len(items), -r)
        ax.text(-0.1, -r, layer, ha="right", va="center", fontsize=9, fontweight="bold")
    top = max((abs(w) for _, _, w in graph.edges), default=1.0) or 1.0
    norm, cmap = Normalize(-top, top), _bwr_colormap()
    for upper, lower, w in sorted(graph.edges, key=lambda e: abs(e[2])):
        (x0, y0), (x1, y1) = pos[upper], pos[lower]
        ax.plot([x0, x1], [y0, y1], color=cmap(norm(w)), lw=0.5 + 4.0 * abs(w) / top, zorder=1)
    for layer, channel, rel in graph.nodes:
        x, y = pos[(layer, channel)]
        ax.scatter([x], [y], s=420, color="white", edgecolors="black", zorder=2)
        ax.text(x, y, str(channel), ha="center", va="center", fontsize=8, zorder=3)
        ax.text(x + 0.2, y - 0.12, f"{rel:.2f}", ha="left", va="top", fontsize=7,
                color="dimgray", zorder=3,
                bbox=dict(facecolor="white", edgecolor="none", pad=0.5, alpha=0.8))
    ax.set_xlim(-1.6, width + 0.2)
    ax.set_ylim(-len(rows) + 0.4, 0.5)
    ax.axis("off")
    ax.text(0.0, 0.0, "grey: each node's share of the root's relevance at its layer",
            transform=ax.transAxes, fontsize=7, color="dimgray")
    if title:
        fig.suptitle(title, fontsize=10)
    bar = fig.add_axes([0.86, 0.15, 0.03, 0.7])
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), cax=bar,
                 label="edge relevance w(upper → lower)")
    return fig


__all__ = ["plot_graph"]

