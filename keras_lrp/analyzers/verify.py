"""The forward check: an analysis explains the user's model, or says where it does not.

Every analyzer explains the forward graph it rewrote from the user's model (canonized: nested
models inlined, blocks traced, activations split, batch norms folded, the output softmax
stripped). A rewrite that read a layer wrongly (a subclass whose ``call`` ignores the
``activation`` it was given, a preprocessing layer whose state a copy lost) would explain
another network, silently. So at build, :func:`check_forward` runs both on a probe batch:

* the reference: the user's own layers, called in the model's graph order (no copy, no
  rewrite), up to the explained tensor (the logits where the softmax was stripped);
* the analysis: the layers of the analyzer's ``forward_model``, in its graph order.

They must agree to ``tol · max |reference|`` with ``tol = √ε`` of the reference's compute dtype
(3.5e-4 in float32, 1.5e-8 in float64 on TensorFlow, 0.031 in float16; off TensorFlow, where
Keras computes float64 models partly in float32, float64 is held to float32's): rewrites are
exact up to rounding, and folding a batch norm into a kernel moves float32 results by a few ε
per layer. Where they
differ, the error names the first tensor (in graph order) whose values differ, the layer that
writes it, both values and what to do. A model whose inputs have open sizes beyond the batch
is probed at size :data:`OPEN_SIZE`; where the model cannot run at that size, the check waits
for the first batch analyzed. Images are probed at most :data:`SMALL_SIDE` pixels a side first
(the rewrites do not depend on the size; ResNet50's check then takes about 0.35 s, ~18 % of its
2 s build on two CPU cores, half of what the 224×224 probe costs), at their own size where the
layers need it.
"""

from __future__ import annotations

from typing import Any, List, Optional

import keras
import numpy as np

from keras_lrp import backend
from keras_lrp.canonizers.base import LOW_PRECISION
from keras_lrp.core import graph as graph_mod
from keras_lrp.core.graph import Graph

#: The size given to an open axis (``None`` beyond the batch) in the probe batch.
OPEN_SIZE = 8
#: Rows of the probe batch (two, so that a rewrite mixing samples shows).
PROBE_ROWS = 2
#: The largest spatial side of the small probe tried first (32: ResNet50's five stride-2
#: stages leave one pixel).
SMALL_SIDE = 32


class ForwardMismatch(ValueError):
    """The analysis' forward pass is not the user's model (see :func:`check_forward`)."""


def tolerance(dtype, backend_name: Optional[str] = None) -> float:
    """√ε of a float dtype (float32: 3.5e-4): the relative agreement asked of a rewrite.

    Off TensorFlow, Keras computes float64 models partly in float32 (its type promotion maps
    float64 to float32 in matmul, maximum, …), so float64 is held to float32's √ε there."""
    name = str(dtype)
    if "bfloat16" in name:
        return float(np.sqrt(2.0 ** -7))
    if "float64" in name and (backend_name or keras.backend.backend()) != "tensorflow":
        name = "float32"
    return float(np.sqrt(np.finfo(name if "float" in name else "float32").eps))


def probe_batch(specs, seed: int = 0, small: bool = False) -> List[np.ndarray]:
    """A batch of :data:`PROBE_ROWS` rows for inputs ``specs``: standard normal floats, ones for
    integer and boolean inputs (a token id and a mask valid for any vocabulary). ``small``:
    images (inputs of rank ≥ 3 beyond the batch) at most :data:`SMALL_SIDE` on each spatial
    side, where the layers allow (a convolutional network: the same rewrites, at a fraction of
    the cost)."""
    rng = np.random.default_rng(seed)
    out = []
    for spec in specs:
        dims = [OPEN_SIZE if d is None else int(d) for d in tuple(spec.shape)[1:]]
        if small and len(dims) >= 3:
            dims = [min(d, SMALL_SIDE) for d in dims[:-1]] + dims[-1:]
        shape = (PROBE_ROWS,) + tuple(dims)
        dtype = str(spec.dtype)
        if "float" in dtype:
            out.append(rng.standard_normal(shape).astype(dtype))
        else:
            out.append(np.ones(shape, "bool" if dtype == "bool" else dtype))
    return out


def _numpy(value) -> Optional[np.ndarray]:
    try:
        return np.asarray(backend.to_numpy(value), dtype="float64")
    except Exception:  # noqa: BLE001 - not a tensor (a shape tuple, None)
        return None


def _differs(got, want, tol: float) -> bool:
    if got is None or want is None:
        return False
    if got.shape != want.shape:
        return True
    finite = np.isfinite(want)
    if not np.array_equal(finite, np.isfinite(got)):
        return True
    if not finite.any():
        return False
    scale = float(np.max(np.abs(want[finite])))
    return bool(np.max(np.abs(got[finite] - want[finite])) > tol * scale + 1e-30)


def _show(values: np.ndarray) -> str:
    flat = values.reshape(-1)
    head = ", ".join(f"{v:.4g}" for v in flat[:4])
    return f"[{head}{', …' if flat.size > 4 else ''}] (shape {tuple(values.shape)})"


def check_forward(name: str, model_name: str, reference: Graph, analysis: Graph,
                  explained: int, dtype, xs: List[Any]) -> bool:
    """Raise :class:`ForwardMismatch` if the analysis graph's tensor ``explained`` is not the
    reference graph's on ``xs`` (see the module docstring). Returns whether there was a model
    tensor to compare with (a rewrite that made the output anew leaves none).

    Args:
        name: the analyzer's name; ``model_name``: the model's, for the message.
        reference: the user's graph before any rewrite (nested models inlined).
        analysis: the canonized graph the analysis explains (its layers are the analyzer's
            forward model's).
        explained: the tensor id of the explained output in both graphs.
        dtype: the reference's compute dtype (the tolerance's).
        xs: the probe batch, one array per input.
    """
    tol = tolerance(dtype)
    got = graph_mod.replay_at_inference(analysis, xs, upto=explained)[explained]
    known = set(reference.producers()) | set(reference.inputs)
    target = _in_reference(analysis, explained, known)
    if target not in known and explained in analysis.stripped:
        # a fused softmax was split off and stripped: its input is no tensor of the model,
        # so compare after the softmax
        softmax, target = analysis.stripped[explained]
        got = softmax(got)
    if target not in known:
        return False  # a rewrite made the output from scratch: nothing of the model to compare
    want = _numpy(graph_mod.replay_at_inference(reference, xs, upto=target)[target])
    got = _numpy(got)
    if not _differs(got, want, tol):
        return True
    raise ForwardMismatch(_message(name, model_name, reference, analysis, xs, got, want, tol))


def _in_reference(analysis: Graph, tid: int, known) -> int:
    """``tid``, or the reference tensor it replaced with the same values."""
    while tid not in known and tid in analysis.aliases:
        tid = analysis.aliases[tid]
    return tid


def _message(name, model_name, reference, analysis, xs, got, want, tol) -> str:
    scale = float(np.max(np.abs(want[np.isfinite(want)]))) if np.isfinite(want).any() else 0.0
    err = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
    where = _first_difference(reference, analysis, xs, tol)
    head = (f"Analyzer {name!r} would explain another network than model '{model_name}': on a "
            f"probe batch its forward output differs from the model's by {err:.3g} (max |output| "
            f"{scale:.3g}, tolerance {tol:.2g} of it).")
    return head + where + (
        " keras-lrp reads a layer of a known class from its attributes; if a subclass's call() "
        "computes something else, call keras_lrp.register_block(ThatClass) so that it is traced "
        "from what call() computes, or give it its own rule with keras_lrp.register_layer. "
        "Please report the model if the layer is a plain Keras one.")


def _first_difference(reference: Graph, analysis: Graph, xs, tol) -> str:
    try:
        ref = graph_mod.replay_at_inference(reference, xs)
        ours = graph_mod.replay_at_inference(analysis, xs)
    except Exception:  # noqa: BLE001 - the diagnosis is best effort; the check stands
        return ""
    producers = reference.producers()
    for node in analysis.nodes:
        for tid in node.outputs:
            original = _in_reference(analysis, tid, producers)
            if original not in ref or tid not in ours or original not in producers:
                continue
            want, got = _numpy(ref[original]), _numpy(ours[tid])
            if _differs(got, want, tol):
                layer = producers[original].layer
                return (f" The first layer whose output differs is '{layer.name}' "
                        f"({type(layer).__name__}): the model gives {_show(want)}, the analysis "
                        f"{_show(got)}.")
    return ""



class ForwardChecked:
    """The forward check as an analyzer runs it, at build on a probe batch or on the first batch
    analyzed: the part of :class:`~keras_lrp.analyzers.base.Analyzer` that reads its
    ``graph``, ``reference_graph``, ``output_index``, ``inputs`` and ``_direct``."""

    def check_forward(self, xs=None) -> None:
        """Check that :attr:`forward_model` computes the user's model on ``xs`` (the first
        rows of a batch; default: a probe batch), up to the stripped softmax.

        Raises:
            ForwardMismatch: naming the first layer whose output differs, with both values.
        """
        if self._direct:
            self._forward_pending, self.forward_checked = False, True
            return  # the user's own layers: nothing was rewritten
        probe = xs is None
        batches = [probe_batch(self.inputs, small=True), probe_batch(self.inputs)] \
            if probe else [[np.asarray(a)[:PROBE_ROWS] for a in xs]]
        for i, batch in enumerate(batches):
            if i and all(np.shape(a) == np.shape(b) for a, b in zip(batch, batches[0])):
                break  # the small probe was the full one
            try:
                self.forward_checked = check_forward(
                    self.name, self.model_name, self.reference_graph, self.graph,
                    self.graph.outputs[self.output_index], self._reference_dtype(),
                    [keras.ops.convert_to_tensor(a) for a in batch])
            except ForwardMismatch:
                raise
            except Exception:  # noqa: BLE001 - the model cannot run on this probe
                if not probe:
                    raise
                continue  # the next probe, or wait for data
            self._forward_pending = False
            return

    def _low_precision(self) -> Optional[str]:
        """The least precise 16-bit compute dtype among the model's layers, or ``None``."""
        dtypes = {getattr(n.layer, "compute_dtype", None) for n in self.reference_graph.nodes}
        low = [d for d in LOW_PRECISION if d in dtypes]
        return low[-1] if low else None

    def _reference_dtype(self):
        """The dtype the forward check's tolerance is set by: a 16-bit layer's, or the
        explained output's."""
        explained = self.graph.outputs[self.output_index]
        return self._low_precision() or self.reference_graph.dtypes().get(explained) or "float32"


__all__ = ["ForwardChecked", "ForwardMismatch", "OPEN_SIZE", "PROBE_ROWS", "SMALL_SIDE",
           "check_forward", "probe_batch", "tolerance"]
