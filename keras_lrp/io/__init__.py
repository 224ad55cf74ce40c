"""Files: relevance results in HDF5 with their metadata (:mod:`~keras_lrp.io.results`,
:mod:`~keras_lrp.io.metadata`), inputs read batch by batch from ``.npy``, ``.npz``, ``.h5`` or
images (:mod:`~keras_lrp.io.sources`), and the one atomic writer every file goes through
(:mod:`~keras_lrp.io.atomic`). A long run writes into a work folder that survives any stop
(:mod:`~keras_lrp.io.writer`, :mod:`~keras_lrp.io.appending`, :mod:`~keras_lrp.io.resume`,
:mod:`~keras_lrp.io.journal`, :mod:`~keras_lrp.io.lock`). The checks of what ``analyze`` is
given moved to :mod:`keras_lrp.analyzers.inputs` (``keras_lrp.io.inputs`` warns, one
release)."""

from keras_lrp.io.results import (
                                  RelevanceWriter,
                                  Results,
                                  load_relevances,
                                  metadata_for,
                                  model_weights_hash,
                                  partial_path,
                                  save_relevances,
)

__all__ = ["RelevanceWriter", "Results", "load_relevances", "metadata_for", "model_weights_hash",
           "partial_path", "save_relevances"]
