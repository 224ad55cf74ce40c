"""The ``keras-lrp`` command: ``demo``, ``analyze``, ``compare``, ``generate`` and ``list``.

:mod:`~keras_lrp.cli.app` parses the command line and runs a command; each command's
arguments are added by an ``add_parser`` beside the code that runs it.
:mod:`~keras_lrp.cli.analyze` and :mod:`~keras_lrp.cli.compare` are the two commands that
explain a user's model, with the arguments and checks they share in
:mod:`~keras_lrp.cli.prepare`; :mod:`~keras_lrp.cli.generate` explains a causal LM's
continuation; :mod:`~keras_lrp.cli.devices` picks the distribution (``tf.distribute``, or
``keras.distribution`` on JAX).
"""

from keras_lrp.cli.app import main

__all__ = ["main"]
