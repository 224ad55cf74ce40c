"""``keras-lrp generate``: a saved keras-hub causal LM, a prompt and its continuation → token
heatmaps and the numbers of ``keras_lrp.explain_generation`` (the same numbers, read back from
generation.npz), and one-line errors for ids it cannot use."""
import numpy as np
import pytest
from helpers import run_cli

pytest.importorskip("keras_hub")
import hub_lm  # noqa: E402
import keras  # noqa: E402

import keras_lrp  # noqa: E402


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generate")
    keras.utils.set_random_seed(8)
    lm = hub_lm.causal_lm("llama")
    path = folder / "lm.keras"
    lm.save(path)
    vocab = folder / "vocab.txt"
    vocab.write_text("".join(f"w{i}\n" for i in range(hub_lm.V)), encoding="utf-8")
    return lm, path, vocab, folder


def test_generate_writes_what_explain_generation_gives(saved):
    lm, path, vocab, folder = saved
    out = folder / "out"
    proc = run_cli("generate", path, "--prompt", "5 17 3 42", "--continuation", "21,9",
                   "--vocab", vocab, "--attention", "cp", "--out", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "'w21'" in proc.stdout and "most relevant" in proc.stdout
    got = np.load(out / "generation.npz")
    want = keras_lrp.explain_generation("lrp.z", lm, np.array([5, 17, 3, 42]),
                                        np.array([21, 9]), attention="cp")
    np.testing.assert_allclose(got["per_token"], want.per_token, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["span_relevance"], want.span_relevance, rtol=1e-5,
                               atol=1e-7)
    assert (out / "generation.png").stat().st_size > 1000
    assert "w42" in (out / "generation.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("args, message", [
    (("--prompt", "5 x 3", "--continuation", "1"), "--prompt takes token ids"),
    (("--prompt", "5 3", "--continuation", "-1"), "each >= 0"),
    (("--prompt", "5 3", "--continuation", "70"), "beyond --vocab"),
])
def test_generate_errors(saved, args, message):
    _, path, vocab, folder = saved
    proc = run_cli("generate", path, *args, "--vocab", vocab, "--out", folder / "bad")
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
