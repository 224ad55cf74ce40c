"""Composites: which relevance layer every node of the graph gets.

:mod:`keras_lrp.composites.core` holds :class:`Composite` (an ordered map from layers to rules
or relevance layers, with the canonizers that prepare the graph);
:mod:`keras_lrp.composites.keys` the :class:`Context` its keys and values read, and the keys
that look beyond one layer;
:mod:`keras_lrp.composites.named` the named composites every analyzer name is made of.

Example:
    >>> keras_lrp.create_analyzer("lrp", model, composite=keras_lrp.composites.EpsilonPlus())
"""

from keras_lrp.composites.core import Composite, as_rule, as_target
from keras_lrp.composites.keys import Context, FirstLayer, UntilLayer
from keras_lrp.composites.named import *  # noqa: F401,F403 - the named composites
from keras_lrp.composites.named import COMPOSITES, NamedComposite

__all__ = ["COMPOSITES", "Composite", "Context", "FirstLayer", "NamedComposite", "UntilLayer",
           "as_rule", "as_target"] + list(COMPOSITES)
