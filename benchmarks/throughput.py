"""Training samples/s of a model config, and its GFLOP/s next to a matmul peak, in one run.

Each setting runs in its own child process (TensorFlow reads `TF_ENABLE_ONEDNN_OPTS`
once, at import), one after the other, and the parent prints them side by side:

  default     what `multimodal-tf train` gets today
  onednn      TF_ENABLE_ONEDNN_OPTS=1 (TensorFlow leaves oneDNN off on CPUs without AVX-512)
  no_onednn   TF_ENABLE_ONEDNN_OPTS=0 (TensorFlow turns it on where AVX-512 is)
  no_aug      `model.image_augmentation: false`
  no_aug_xla  the same, its train step compiled with XLA. Keras' `jit_compile="auto"`
              leaves XLA off on a machine without a GPU, and the augmentation layers'
              affine transform has no XLA kernel, so XLA is measured without them.

A child builds the config's model on random preprocessed tensors (so the input
pipeline is out of the measurement; `input_pipeline.py` measures that), times
`--steps` training steps after a warm-up, counts the FLOPs of one training step from
the traced graph (forward, loss and gradients; not the optimizer update), and times a
2048x2048 float32 matmul as the machine's peak. Usage:

    .venv/bin/python benchmarks/throughput.py [--config FILE] [--steps 30] [--batch-size 32]
"""

import argparse
import json
import os
import subprocess
import sys
import time

# name: (environment, child arguments)
SETTINGS = {
    "default": ({}, []),
    "onednn": ({"TF_ENABLE_ONEDNN_OPTS": "1"}, []),
    "no_onednn": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, []),
    "no_aug": ({}, ["--no-augmentation"]),
    "no_aug_xla": ({}, ["--no-augmentation", "--jit-compile"]),
}


def child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import tensorflow as tf

    from multimodal_tf.config import load_config
    from multimodal_tf.models.preprocessor import MultimodalPreprocessor
    from multimodal_tf.models.text_encoder import text_features_for
    from multimodal_tf.training.run_model import build_model
    from multimodal_tf.training.wide_first import freeze_wide

    config = load_config(args.config)
    if args.no_augmentation:
        config.model.image_augmentation = False
    keras.utils.set_random_seed(0)
    data = config.data
    text_features = text_features_for(config.model.text_encoder)
    # n-gram vocabularies fill max_vocabulary_size (MVSA-Single's 107k n-grams fill about
    # half of the default); sequence_length 0 is chosen from the data at adapt(): 424
    # is what MVSA-Single's tweets gave with every training n-gram kept.
    num_tokens = 5000 if text_features == "words" else data.max_vocabulary_size - 2
    length = data.sequence_length or 424
    preprocessor = MultimodalPreprocessor(
        [f"token{i}" for i in range(num_tokens)],
        length,
        data.image_size,
        data.max_vocabulary_size,
        text_features=text_features,
    )
    model = build_model(config.model, ["a", "b", "c"], preprocessor)
    if config.training.wide_epochs and model.wide:
        # train() fits the linear path first (a few seconds) and freezes it; the
        # training that takes the time is the rest, measured here.
        freeze_wide(model)
    model.compile()
    if args.jit_compile:
        # Keras declines XLA for a model with a layer that does not declare support
        # (the serving-only StringLookup, and the augmentation's RandomZoom and
        # RandomTranslation), and its setter refuses; set underneath it, the train step
        # is compiled with XLA anyway.
        model._jit_compile = True
    rng = np.random.default_rng(0)
    batch = args.batch_size
    features = {
        "token_ids": rng.integers(0, num_tokens + 2, (batch, length)).astype("int32"),
        "image": rng.uniform(0, 255, (batch, *data.image_size, 3)).astype("float32"),
        "image_present": np.ones(batch, "float32"),
    }
    labels = np.eye(3, dtype="float32")[rng.integers(0, 3, batch)]
    for _ in range(5):  # trace and warm up
        model.train_on_batch(features, labels)
    started = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(features, labels)
    seconds = time.perf_counter() - started
    samples_per_second = args.steps * batch / seconds

    flops = _train_step_flops(model, features, labels)
    size = 2048
    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)))
    matmul().numpy()
    started = time.perf_counter()
    for _ in range(10):
        matmul().numpy()
    peak = 10 * 2 * size**3 / (time.perf_counter() - started) / 1e9
    achieved = flops * args.steps / seconds / 1e9 if flops else float("nan")
    print(json.dumps({"samples_per_second": samples_per_second, "gflops": achieved, "peak": peak}))


def _train_step_flops(model, features, labels):
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer, option_builder

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=True))
        return tape.gradient(loss, model.trainable_variables)

    graph = step.get_concrete_function(features, labels).graph
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return model_analyzer.profile(graph, options=options).total_float_ops  # per step


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="Run config (default: the package defaults).")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--jit-compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-augmentation", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    results = {}
    for name, (env, child_args) in SETTINGS.items():
        command = [sys.executable, __file__, "--child", "--steps", str(args.steps), *child_args]
        command += ["--batch-size", str(args.batch_size)]
        if args.config:
            command += ["--config", args.config]
        done = subprocess.run(
            command, env={**os.environ, **env}, capture_output=True, text=True, check=True
        )
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = results["default"]["samples_per_second"]
    print("| setting | samples/s | vs default | achieved GFLOP/s | matmul peak GFLOP/s |")
    print("|---|---:|---:|---:|---:|")
    for name, result in results.items():
        print(
            f"| {name} | {result['samples_per_second']:.0f} | "
            f"{result['samples_per_second'] / base:.2f} | {result['gflops']:.1f} | "
            f"{result['peak']:.1f} |"
        )


if __name__ == "__main__":
    main()
