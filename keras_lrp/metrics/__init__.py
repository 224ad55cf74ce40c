"""Evaluation measures for explanations, with Quantus's names, parameters and numbers, on
Keras 3 and every backend.

Each metric is a class named as Quantus names it, called like Quantus's
(``metric(model, x, y, a=relevance, s=mask, explain=analyzer)``) on a whole batch at once, and
returning one value (or one curve) per sample; :func:`get` finds one by name (``"road"`` or
``"ROAD"``), and :data:`METRICS` lists them all. See :mod:`keras_lrp.metrics.base` for the
contract and the how-to "Evaluating explanations" for a tour.
"""

from keras_lrp.metrics.axiomatic import (
    Completeness,
    CompletenessGap,
    InputInvariance,
    NonSensitivity,
)
from keras_lrp.metrics.base import Explainer, Layout, Metric, Scores
from keras_lrp.metrics.complexity import Complexity, EffectiveComplexity, Sparseness
from keras_lrp.metrics.faithfulness import (
    IROF,
    FaithfulnessEstimate,
    Monotonicity,
    PixelFlipping,
    RegionPerturbation,
    Selectivity,
)
from keras_lrp.metrics.localisation import (
    AUC,
    AttributionLocalisation,
    PointingGame,
    RelevanceMassAccuracy,
    RelevanceRankAccuracy,
    TopKIntersection,
)
from keras_lrp.metrics.randomisation import MPRT, RandomLogit
from keras_lrp.metrics.registry import METRICS, UnknownMetric, available, get, register
from keras_lrp.metrics.road import ROAD
from keras_lrp.metrics.robustness import (
    AvgSensitivity,
    Continuity,
    LocalLipschitzEstimate,
    MaxSensitivity,
)
from keras_lrp.metrics.stochastic import FaithfulnessCorrelation, Infidelity

for _cls in (Completeness, CompletenessGap, InputInvariance, NonSensitivity, Complexity,
             EffectiveComplexity, Sparseness, AUC, AttributionLocalisation, PointingGame,
             RelevanceMassAccuracy, RelevanceRankAccuracy, TopKIntersection, MPRT, RandomLogit,
             IROF, FaithfulnessEstimate, Monotonicity, PixelFlipping, RegionPerturbation,
             Selectivity, ROAD, FaithfulnessCorrelation, Infidelity, AvgSensitivity,
             Continuity, LocalLipschitzEstimate, MaxSensitivity):
    register(_cls)
del _cls

__all__ = ["METRICS", "UnknownMetric", "available", "get", "register", "Metric", "Scores",
           "Explainer", "Layout", *sorted(c.__name__ for c in METRICS.values())]
