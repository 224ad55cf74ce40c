"""The engine's core: layer families (:mod:`~keras_lrp.core.types`), the layer graph
(:mod:`~keras_lrp.core.graph`), linear operators and their transposes
(:mod:`~keras_lrp.core.linear`) and the stabilised arithmetic every rule shares
(:mod:`~keras_lrp.core.stabilize`). Nothing here depends on another part of keras-lrp."""
