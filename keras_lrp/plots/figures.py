"""The figure plumbing every plot shares: an off-screen Agg figure, saved as a PNG atomically,
and the two colours of relevance."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from keras_lrp.io.atomic import write_atomically

RED, BLUE = (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)


def save_figure(fig: Figure, path: str, dpi: int = 100) -> None:
    """Save ``fig`` as a PNG atomically: a temp file in the same folder, then os.replace.

    Args:
        fig: the figure.
        path: the PNG's path; its folder must exist.
        dpi: dots per inch (the PNG is figure size × dpi pixels).
    """
    write_atomically(path, lambda handle: fig.savefig(handle, format="png", dpi=dpi))


def new_figure(width: float, height: float, **kwargs) -> Figure:
    fig = Figure(figsize=(width, height), **kwargs)
    FigureCanvasAgg(fig)
    return fig
