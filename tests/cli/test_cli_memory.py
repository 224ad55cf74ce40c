"""An inputs file larger than the process may use streams batch by batch.

The command line runs in a subprocess whose address space is capped (``RLIMIT_AS``) at what the
same command needs for a small file plus *half* the big file's size: reading the big file whole
(or memory-mapping it, which also counts against the address space) cannot fit, so a pass
proves that ``.npy`` and ``.h5`` inputs are read by slices. The subprocess then tries to
allocate the file's size at once, which must fail: the cap really bites. The figures (peak
virtual and resident memory against the file size) are printed (``-s``).
"""
import os
import subprocess
import sys
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
FEATURES, ROWS, BATCH = 1000, 100_000, 2048  # 400 MB of float32 inputs
WRAPPER = r"""
import os, resource, sys
limit = int(sys.argv[1])
if limit:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from keras_lrp.cli import main
rc = main(sys.argv[2:])
vm = int(open("/proc/self/status").read().split("VmPeak:")[1].split()[0]) * 1024
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
whole = "-"
if rc == 0 and limit:
    import numpy as np
    try:
        np.ones(int(os.environ["FILE_BYTES"]), dtype=np.uint8)
        whole = "fits"
    except MemoryError:
        whole = "MemoryError"
print(f"MEM {vm} {rss} {whole}")
sys.exit(rc)
"""


def _run(limit, inputs, out, file_bytes, *extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", FILE_BYTES=str(file_bytes), PYTHONPATH=os.
               pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(limit), "analyze", out.parent /
                           "m.keras", inputs, "--method", "lrp.epsilon", "--batch-size",
                           str(BATCH), "--out", out, *extra], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, vm, rss, whole = [line for line in proc.stdout.splitlines() if line.startswith("MEM")][
        0].split()
    return int(vm), int(rss), whole


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("memory")
    keras.utils.set_random_seed(0)
    i = keras.Input((FEATURES,), name="x")
    keras.Model(i, keras.layers.Dense(3)(keras.layers.Dense(16, activation="relu")(i)),
                name="m").save(d / "m.keras")
    rng = np.random.default_rng(0)
    big = np.lib.format.open_memmap(d / "big.npy", mode="w+", dtype="float32",
                                    shape=(ROWS, FEATURES))
    for start in range(0, ROWS, 10_000):
        big[start:start + 10_000] = rng.random((min(10_000, ROWS - start), FEATURES), "float32")
    big.flush()
    del big
    np.save(d / "small.npy", rng.random((2 * BATCH, FEATURES), "float32"))
    size = (d / "big.npy").stat().st_size
    vm_small, rss_small, _ = _run(0, d / "small.npy", d / "small.h5", size)
    return d, size, vm_small, rss_small


@pytest.mark.slow  # ~40 s each: a 381 MiB file through a process capped below its size
@pytest.mark.parametrize("kind", ["npy", "h5"])
def test_file_larger_than_the_process_may_use_streams(files, kind):
    d, size, vm_small, rss_small = files
    inputs = d / "big.npy"
    if kind == "h5":
        inputs = d / "big.h5"
        if not inputs.exists():
            src = np.load(d / "big.npy", mmap_mode="r")
            with h5py.File(inputs, "w") as f:
                data = f.create_dataset("x", shape=src.shape, dtype=src.dtype,
                                        chunks=(BATCH, FEATURES))
                for start in range(0, ROWS, 10_000):
                    data[start:start + 10_000] = src[start:start + 10_000]
            del src
    limit = vm_small + size // 2
    vm, rss, whole = _run(limit, inputs, d / f"big_{kind}.h5", size)
    print(f"\n[memory/{kind}] file {size / 2**20:.0f} MiB; cap {limit / 2**20:.0f} MiB of address "
          f"space; small file: peak VM {vm_small / 2**20:.0f} MiB, RSS {rss_small / 2**20:.0f} "
          f"MiB; big file: peak VM {vm / 2**20:.0f} MiB, RSS {rss / 2**20:.0f} MiB; the file's "
          f"size at once under the cap: {whole}")
    assert vm <= limit
    assert whole == "MemoryError"  # the cap is real: the file could not have been held whole
    with h5py.File(d / f"big_{kind}.h5", "r") as f:
        assert f["relevance"]["lrp.epsilon"].shape == (ROWS, FEATURES)
        np.testing.assert_array_equal(f["inputs"][ROWS - 5:], np.load(
            d / "big.npy", mmap_mode="r")[ROWS - 5:])
    (d / f"big_{kind}.h5").unlink()
