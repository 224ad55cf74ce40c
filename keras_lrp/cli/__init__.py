"""The ``keras-lrp`` command: ``list``, ``analyze``, ``compare`` and ``demo``.

:mod:`~keras_lrp.cli.app` parses the command line and runs a command;
:mod:`~keras_lrp.cli.analyze` and :mod:`~keras_lrp.cli.compare` are the two commands that
explain a user's model; :mod:`~keras_lrp.cli.devices` picks the distribution (``tf.distribute``, or
``keras.distribution`` on JAX).
"""

from keras_lrp.cli.app import main

__all__ = ["main"]
