"""The README's transformer figure and table: the shipped ViT's heatmaps beside the CNN's for one
digit of each class, and the pixel-flipping AOPC of AttnLRP, CP-LRP, input × gradient and
gradient on the ViT (keras_lrp.demos.transformer), written to examples/transformer/.

    python examples/digits_transformer.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_lrp.demos.transformer import run_transformer_demo  # noqa: E402

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    run_transformer_demo(out_dir=HERE / "transformer",
                         models_dir=HERE.parent / "keras_lrp" / "demos" / "models")
