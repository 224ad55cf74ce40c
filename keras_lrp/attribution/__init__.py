"""Deprecated: the analyzers moved to :mod:`keras_lrp.analyzers` (one name for one concept).

``import keras_lrp.attribution`` and ``keras_lrp.attribution.<module>`` keep working for one
release: each old module name is the new module itself (``keras_lrp.attribution.lengths is
keras_lrp.analyzers.lengths``), and importing this package warns once with a
DeprecationWarning.
"""

import importlib
import sys
import warnings

warnings.warn("keras_lrp.attribution moved to keras_lrp.analyzers; the old name goes in the next "
              "release.", DeprecationWarning, stacklevel=2)

_MODULES = ("base", "baselines", "evaluate", "gradient", "lengths", "lrp", "padding", "report",
            "reverse", "running", "serialize", "verify", "wrappers")

for _name in _MODULES:
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"keras_lrp.analyzers.{_name}")

from keras_lrp.analyzers import *  # noqa: E402,F401,F403 - the old package's names
from keras_lrp.analyzers import __all__  # noqa: E402,F401
