"""What tracing the serving graph once saves an export, side by side with Keras's two traces.

`export_saved_model` writes the SavedModel through `keras.export.ExportArchive`,
which traces the endpoint's `tf.function` to list its variables; then
`tf.saved_model.save` traces it again, since a function's cache key includes
whether it is traced inside a save. `export._trace_once` hands the archive the
endpoint's concrete function instead, so the preprocessor and the model are
traced once. This script trains two small models (the tests' small config, and
the same with a MobileNetV2 0.35 backbone from a local random-weights file: no
download), then exports each with and without `_trace_once` in interleaved
rounds (the machines are shared and noisy) and prints every export's seconds
and the ratio of the medians. Usage:

    .venv/bin/python benchmarks/export_trace.py --rounds 3
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' own small config

import keras  # noqa: E402

import multimodal_tf as mtf  # noqa: E402
from multimodal_tf.serving import export  # noqa: E402
from tests.conftest import make_tiny_config  # noqa: E402

ONCE = export._trace_once


def models(folder):
    """`{name: trained model}`: the small config, and with a frozen MobileNetV2 0.35."""
    manifest = mtf.make_demo_dataset(folder / "data", num_samples=48, image_size=32)
    small = make_tiny_config()
    small.training.epochs = 1
    backbone = keras.applications.MobileNetV2(
        alpha=0.35, include_top=False, weights=None, input_shape=(None, None, 3)
    )
    weights_file = folder / "mobilenet_v2_0.35.weights.h5"
    backbone.save_weights(weights_file)
    pretrained = make_tiny_config()
    pretrained.training.epochs = 1
    pretrained.data.image_size = (32, 32)
    pretrained.model.image_encoder = "mobilenet_v2"
    pretrained.model.backbone_alpha = 0.35
    pretrained.model.grid_size = 1
    pretrained.model.image_weights = str(weights_file)
    return {
        name: mtf.train(manifest, config, folder / name, verbose=0).model
        for name, config in (("small", small), ("mobilenet_v2", pretrained))
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    arms = {"two traces (Keras)": lambda archive, endpoint: None, "one trace": ONCE}
    for model_name, model in models(folder).items():
        export.export_saved_model(model, folder / "warm-up")  # imports, first-time costs
        seconds = {arm: [] for arm in arms}
        for round_index in range(args.rounds):
            for arm, trace in arms.items():
                export._trace_once = trace
                start = time.perf_counter()
                export.export_saved_model(model, folder / "exports" / model_name)
                seconds[arm].append(time.perf_counter() - start)
                print(f"{model_name}: round {round_index}: {arm}: {seconds[arm][-1]:.2f} s")
        export._trace_once = ONCE
        twice, once = (statistics.median(seconds[arm]) for arm in arms)
        print(
            f"{model_name}: median export {twice:.2f} s -> {once:.2f} s "
            f"({twice / once:.2f}x) over {args.rounds} rounds\n",
            flush=True,
        )


if __name__ == "__main__":
    main()
