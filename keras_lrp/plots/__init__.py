"""Figures: relevance heatmaps and overlays (:mod:`~keras_lrp.plots.heatmap`), token
heatmaps as PNG and HTML (:mod:`~keras_lrp.plots.tokens`), and the comparison report, one
self-contained HTML page (:mod:`~keras_lrp.plots.html`)."""
