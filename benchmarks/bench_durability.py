"""What each kind of stop costs a long ``keras-lrp analyze`` run, and what durability costs.

    python benchmarks/bench_durability.py [--rows 14400] [--batch 32] [--repeats 3]

The run: the shipped digits CNN on the shipped test digits tiled to ``--rows`` (14,400: 450
batches of 32), ``lrp.epsilon`` and ``lrp.alpha_1_beta_0_IB``, as a subprocess.

1. **Stops.** For each kind of stop, a fresh run is stopped when its work folder holds the
   given share of the batches; then ``--resume`` finishes it. Printed: the rows finished when
   the signal was sent (the shards on disk then), the rows kept, the rows lost (finished but
   not kept; the batch in flight is never finished), the exit code, and the wall time of the
   ``--resume`` run (process start included) against the uninterrupted run.
2. **Overhead.** In one process, the same analysis loop writes with this version's
   :class:`~keras_lrp.io.writer.RelevanceWriter` (a shard per batch, fsync every 5 s, merge at
   the end) and with keras-lrp 0.4's (one HDF5 file, flushed per batch; read from git), in
   alternation, ``--repeats`` times each, and with an fsync after every batch
   (``sync_every=0``). Printed: the medians and their ratios.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "keras_lrp" / "demos" / "models"
METHODS = ("lrp.epsilon", "lrp.alpha_1_beta_0_IB")
OLD_WRITER = "9d8749c"  # the last commit with keras-lrp 0.4's writer
STOPS = [("SIGINT (Ctrl-C)", signal.SIGINT, 0.5), ("SIGTERM", signal.SIGTERM, 0.3),
         ("SIGKILL", signal.SIGKILL, 0.15), ("SIGKILL", signal.SIGKILL, 0.4),
         ("SIGKILL", signal.SIGKILL, 0.7), ("SIGTERM, then SIGINT at once", signal.SIGTERM, 0.5)]


def _env():
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path, TF_CPP_MIN_LOG_LEVEL="3")


def _command(x, out, batch, *extra):
    args = [sys.executable, "-m", "keras_lrp.cli", "analyze", str(MODELS / "digits_cnn.keras"),
            str(x), "--out", str(out), "--batch-size", str(batch)]
    for m in METHODS:
        args += ["--method", m]
    return args + list(extra)


def _shards(out) -> int:
    from keras_lrp.io import journal

    try:
        return len(journal.shard_numbers(f"{out}.partial"))
    except (FileNotFoundError, NotADirectoryError):
        return 0


def _timed(command) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, env=_env(), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-2000:])
    return time.perf_counter() - start


def stops(x, folder: Path, rows: int, batch: int) -> None:
    from keras_lrp.io import load_relevances

    batches = -(-rows // batch)
    whole = _timed(_command(x, folder / "whole.h5", batch))
    print(f"uninterrupted run: {whole:.1f} s ({rows} rows, {batches} batches of {batch})\n")
    print("| stop | at | rows finished | rows kept | rows lost | exit | --resume |")
    print("|---|---|---|---|---|---|---|")
    for name, sig, share in STOPS:
        out = folder / "out.h5"
        for p in folder.glob("out.h5*"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        proc = subprocess.Popen(_command(x, out, batch), env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        while proc.poll() is None and _shards(out) < int(share * batches):
            time.sleep(0.0005)
        finished = _shards(out) * batch
        proc.send_signal(sig)
        if "at once" in name:
            proc.send_signal(signal.SIGINT)
        proc.communicate()
        kept = len(load_relevances(f"{out}.partial").inputs)
        took = _timed(_command(x, out, batch, "--resume"))
        print(f"| {name} | {share:.0%} | {finished} | {kept} | {max(0, finished - kept)} | "
              f"{proc.returncode} | {took:.1f} s ({took / whole:.2f} of the whole run) |")


def _old_writer():
    source = subprocess.run(["git", "show", f"{OLD_WRITER}:keras_lrp/io/results.py"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "results_0_4.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("results_0_4", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.RelevanceWriter


def overhead(x, folder: Path, batch: int, repeats: int) -> None:
    import keras

    import keras_lrp
    from keras_lrp import backend
    from keras_lrp.io import metadata_for
    from keras_lrp.io.writer import RelevanceWriter

    model = keras.models.load_model(MODELS / "digits_cnn.keras", compile=False)
    analyzers = {m: keras_lrp.create_analyzer(m, model) for m in METHODS}
    meta = metadata_for([(m, m, {}) for m in METHODS], model)
    writers = {"this version": RelevanceWriter, "0.4 (no durability)": _old_writer(),
               "this version, fsync per batch": functools.partial(RelevanceWriter, sync_every=0)}
    data = np.load(x)

    def run(writer_class) -> float:
        out = folder / "overhead.h5"
        start = time.perf_counter()
        with writer_class(out, meta) as writer:
            for i in range(0, len(data), batch):
                xb = data[i:i + batch]
                logits = backend.to_numpy(analyzers[METHODS[0]].forward_model(xb))
                writer.append_inputs(xb, predictions=logits, neurons=logits.argmax(1))
                for m, a in analyzers.items():
                    writer.append(m, a.analyze(xb))
        return time.perf_counter() - start

    run(RelevanceWriter)  # compile and warm up
    times = {k: [] for k in writers}
    for _ in range(repeats):
        for name, cls in writers.items():
            times[name].append(run(cls))
    new, old, every = (statistics.median(times[k]) for k in writers)
    per_batch = 1e3 / -(-len(data) // batch)
    print(f"\nin one process, {len(data)} rows ({repeats} runs each, medians): this version "
          f"{new:.2f} s, 0.4 {old:.2f} s; durability costs {100 * (new / old - 1):+.1f} % "
          f"({per_batch * (new - old):+.2f} ms per batch); with an fsync per batch "
          f"{every:.2f} s ({100 * (every / old - 1):+.1f} %, {per_batch * (every - old):+.2f} ms)")
    print("runs:", {k: [round(t, 2) for t in v] for k, v in times.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=14400)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-stops", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with np.load(MODELS / "digits_test.npz") as d:
            x = np.resize(d["x"], (args.rows,) + d["x"].shape[1:])
        np.save(folder / "x.npy", x)
        if not args.skip_stops:
            stops(folder / "x.npy", folder, args.rows, args.batch)
        overhead(folder / "x.npy", folder, args.batch, args.repeats)


if __name__ == "__main__":
    main()
