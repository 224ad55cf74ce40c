"""The demos behind ``keras-lrp demo``: the digits CNN (:mod:`~keras_lrp.demos.digits`), the
addition LSTM (:mod:`~keras_lrp.demos.sequence`), the ViT and the text transformer
(:mod:`~keras_lrp.demos.transformer`, :mod:`~keras_lrp.demos.text`), Concept Relevance
Propagation on a CNN whose concepts are known (:mod:`~keras_lrp.demos.concepts`), and what
they share (:mod:`~keras_lrp.demos.common`). Their models ship as package data in
``keras_lrp/demos/models/`` (:data:`~keras_lrp.demos.common.MODELS_DIR`)."""
