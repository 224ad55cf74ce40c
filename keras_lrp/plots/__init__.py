"""Figures: relevance heatmaps and overlays (:mod:`~keras_lrp.plots.heatmap`) and token
heatmaps as PNG and HTML (:mod:`~keras_lrp.plots.tokens`)."""
