"""Where relevance goes: Σ R per layer next to the explained output."""

from __future__ import annotations

from typing import Dict, List

import numpy as np


class ConservationReport:
    """Σ R at each layer's output, per sample, next to the explained value.

    With a conserving rule on a bias-free network every row equals the explained value; a rule
    with a bias or a stabiliser ε absorbs the difference at the layer where the row drops.

    Attributes:
        sums: layer name → Σ R per sample (forward order; model inputs first).
        explained: the relevance entering the network per sample (e.g. the explained logit).
        absorbed: layer name → the relevance absorbed between that layer's output and its
            inputs, summed over the network, per sample (``explained − Σ R_input``).
    """

    def __init__(self, analyzer_name: str, layerwise: Dict[str, np.ndarray], explained,
                 input_names: List[str]):
        self.analyzer_name = analyzer_name
        self.sums = {k: _per_sample_sum(v) for k, v in layerwise.items()}
        self.explained = _per_sample_sum(explained)
        self.input_names = list(input_names)
        self.input_sum = sum(self.sums[n] for n in self.input_names)
        self.absorbed = self.explained - self.input_sum

    def relative_error(self) -> np.ndarray:
        """|explained − Σ R_input| / |explained| per sample (0 where nothing was explained)."""
        denominator = np.where(self.explained == 0, 1.0, np.abs(self.explained))
        return np.abs(self.absorbed) / denominator

    def __str__(self) -> str:
        width = max([len(k) for k in self.sums] + [12])
        lines = [f"Conservation report for {self.analyzer_name} (mean over "
                 f"{self.explained.shape[0]} samples)",
                 f"{'layer':<{width}}  {'sum R':>12}  {'/ explained':>11}"]
        explained = float(np.mean(self.explained))
        for name, total in self.sums.items():
            mean = float(np.mean(total))
            ratio = mean / explained if explained else float("nan")
            lines.append(f"{name:<{width}}  {mean:>12.6g}  {ratio:>11.4f}")
        lines.append(f"{'explained':<{width}}  {explained:>12.6g}  {1:>11.4f}")
        return "\n".join(lines)

    __repr__ = __str__


def _per_sample_sum(a) -> np.ndarray:
    a = np.asarray(a, dtype="float64")
    return a.reshape(a.shape[0], -1).sum(axis=1)
