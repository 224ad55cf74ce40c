"""JAX's distribution: ``keras.distribution.DataParallel`` over two CPU devices (forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=2``, which must be set before JAX starts,
hence a fresh process). The analyzer shards every batch along its first axis, pads a batch that
does not divide, and returns the rows in input order: equal to the one-device analysis (bit for
bit here, as each device runs the same program on its rows; SmoothGrad with one seed draws the
same noise)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")
ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("jax_distribution_worker.py")


def test_data_parallel_over_two_devices_equals_one(tmp_path):
    out = tmp_path / "jax.npz"
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=path, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    proc = subprocess.run([sys.executable, str(WORKER), str(out)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = np.load(out)
    assert int(r["devices"]) == 2 and int(r["replicas"]) == 2
    assert int(r["shard_devices"]) == 2 and r["shard_rows"].tolist() == [2, 2]  # 3 rows, padded
    singles = [k for k in r.files if k.endswith("|single")]
    assert len(singles) == 5
    for key in singles:
        single, spread = r[key], r[key.replace("|single", "|spread")]
        assert spread.shape == single.shape == (11, 8, 8, 1), key
        assert np.abs(single).max() > 0, key
        np.testing.assert_allclose(spread, single, rtol=1e-6,
                                   atol=1e-7 * np.abs(single).max(), err_msg=key)
