"""Serving latency of an exported SavedModel on raw JPEG bytes + text, against latency targets.

Without `--model`, builds the default run config's model (`RunConfig()`: the frozen
ImageNet MobileNetV2 0.35 at 128x128, from the Keras cache), adapts its preprocessor
(spaCy norms included) on the demo dataset's texts, and exports it with
`export_saved_model` into a temporary folder. Its heads are untrained: that does not
change the work per request.

Each setting runs in its own child process (TensorFlow reads `TF_ENABLE_ONEDNN_OPTS`
and sizes its thread pools once), one after the other, on the same export:

  onednn=1             TensorFlow's defaults on x86 (oneDNN kernels, one intra-op
                       thread per core)
  onednn=0             TF_ENABLE_ONEDNN_OPTS=0
  onednn=1 intra_op=1  one intra-op thread, as `tensorflow_model_server
                       --tensorflow_intra_op_parallelism=1` (the Docker command of
                       `multimodal_tf.serving.serving_config` passes it)

A child loads the export with `tf.saved_model.load`, as TF Serving does, and calls
`signatures["serving_default"]` on two kinds of images: the demo's 64x64 JPEGs and
~500x400 photo-like JPEGs (gradient + shapes + noise, quality 90, ~50 KB). It measures
batch-1 latency (p50, p99 over `--calls` calls after warm-up), batch-64 samples/s, and
the REST body cost of one 64-row request: `json.dumps` of a row body with base64
images, and decoding it back to bytes (`multimodal_tf.serving.rest` if present).
With the Keras model at hand (always, without `--model`), it also times the parts
(preprocessor, text standardizer, image decoder, model on tensors) on the same
inputs. Usage:

    .venv/bin/python benchmarks/serving.py [--model saved_models/NAME/VERSION]
        [--calls 300] [--output benchmarks/results/serving.md]
"""

import argparse
import base64
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# The first setting is TensorFlow's default; the report compares the others with it.
SETTINGS = {
    "onednn=1": {"TF_ENABLE_ONEDNN_OPTS": "1"},
    "onednn=0": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "onednn=1 intra_op=1": {"TF_ENABLE_ONEDNN_OPTS": "1", "SERVING_BENCH_INTRA_OP": "1"},
}
BARS = {"p50_ms": 5.0, "p99_ms": 10.0, "batch64_per_s": 500.0}
PHOTO_SIZE = (500, 400)


def prepare(folder):
    """Exports the default config's model (untrained) and saves its `.keras` file."""
    import keras

    from multimodal_tf.config import RunConfig
    from multimodal_tf.data.demo import CLASS_NAMES, make_demo_dataset
    from multimodal_tf.serving.export import export_saved_model
    from multimodal_tf.training.run_model import adapted_preprocessor, build_model

    config = RunConfig()
    keras.utils.set_random_seed(0)
    manifest = make_demo_dataset(folder / "demo", num_samples=400)
    texts = [line.split(",")[1] for line in manifest.read_text().splitlines()[1:]]
    preprocessor = adapted_preprocessor(config, texts)
    model = build_model(config.model, list(CLASS_NAMES), preprocessor)
    model.save(folder / "model.keras")
    return export_saved_model(model, folder / "saved_models" / "default"), folder / "model.keras"


def samples(folder, rows=64):
    """64 (text, demo JPEG bytes) pairs and 64 (text, ~500x400 JPEG bytes) pairs."""
    sys.path.insert(0, str(Path(__file__).parent))
    from helpers.synthetic_images import make_image

    from multimodal_tf.data.demo import make_demo_dataset

    demo = Path(folder) / "demo"
    if not (demo / "manifest.csv").is_file():
        make_demo_dataset(demo, num_samples=2 * rows)
    lines = (demo / "manifest.csv").read_text().splitlines()[1:]
    pairs = [line.split(",") for line in lines]
    jpegs = [
        (text, (demo / image).read_bytes()) for _, text, image, _ in pairs if image.endswith(".jpg")
    ]
    demo_rows = (jpegs * rows)[:rows]
    rng = np.random.default_rng(0)
    photos = []
    for index in range(rows):
        buffer = io.BytesIO()
        make_image(rng, *PHOTO_SIZE).save(buffer, format="JPEG", quality=90)
        photos.append((demo_rows[index][0], buffer.getvalue()))
    return {"demo 64x64 JPEG": demo_rows, "photo 500x400 JPEG": photos}


def child(args):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if os.environ.get("SERVING_BENCH_INTRA_OP"):
        tf.config.threading.set_intra_op_parallelism_threads(
            int(os.environ["SERVING_BENCH_INTRA_OP"])
        )
    serve = tf.saved_model.load(args.model).signatures["serving_default"]
    keras_model = None
    if args.keras:
        import keras

        import multimodal_tf.models  # noqa: F401  (registers the classes)

        keras_model = keras.saving.load_model(args.keras, compile=False)
    results = {}
    for kind, rows in samples(args.data).items():
        texts = [text for text, _ in rows]
        images = [image for _, image in rows]

        def call(start, size, rows=rows, texts=texts, images=images):
            chosen = [(start + offset) % len(rows) for offset in range(size)]
            out = serve(
                text=tf.constant([texts[i] for i in chosen]),
                image=tf.constant([images[i] for i in chosen]),
            )
            return out["probabilities"].numpy()

        for index in range(30):  # trace, warm up
            call(index, 1)
        latencies = []
        for index in range(args.calls):
            started = time.perf_counter()
            call(index, 1)
            latencies.append((time.perf_counter() - started) * 1e3)
        call(0, 64)
        call(0, 64)
        started = time.perf_counter()
        for _ in range(args.batches):
            call(0, 64)
        per_second = 64 * args.batches / (time.perf_counter() - started)
        result = {
            "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)),
            "batch64_per_s": per_second,
            "jpeg_kb": float(np.mean([len(image) for image in images]) / 1024),
        }
        result.update(_rest_cost(texts, images))
        if keras_model is not None:
            result["parts"] = _parts(keras_model, texts, images)
        results[kind] = result
    print(json.dumps(results))


def _rest_cost(texts, images, repeats=30):
    """ms to build + `json.dumps` a 64-row request, and to parse it back to bytes."""
    try:
        from multimodal_tf.serving.rest import decode_rest_body, row_body
    except ImportError:  # the REST helpers are newer than this script

        def row_body(texts, images):
            return {
                "instances": [
                    {"text": text, "image": {"b64": base64.b64encode(image).decode("ascii")}}
                    for text, image in zip(texts, images, strict=True)
                ]
            }

        def decode_rest_body(body):
            rows = json.loads(body)["instances"]
            return {
                "text": [row["text"] for row in rows],
                "image": [base64.b64decode(row["image"]["b64"]) for row in rows],
            }

    encode, decode = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        body = json.dumps(row_body(texts, images))
        encode.append(time.perf_counter() - started)
        started = time.perf_counter()
        columns = decode_rest_body(body)
        decode.append(time.perf_counter() - started)
    if columns["image"] != list(images):
        raise RuntimeError("The REST round trip changed the image bytes.")
    return {
        "rest_encode_ms": float(np.median(encode) * 1e3),
        "rest_decode_ms": float(np.median(decode) * 1e3),
        "rest_body_kb": len(body) / 1024,
    }


def _parts(model, texts, images, repeats=50):
    """Median ms of each stage, compiled alone, at batch 1 and batch 64."""
    import tensorflow as tf

    preprocessor = model.preprocessor
    stages = {
        "preprocessor": lambda t, i: preprocessor({"text": t, "image": i}),
        "text: standardize": lambda t, i: preprocessor.text_standardizer(t),
        "text: standardize+lookup": lambda t, i: preprocessor({"text": t}),
        "image: decode+resize": lambda t, i: preprocessor.image_decoder(i),
        "model on tensors": None,
    }
    parts = {}
    for size in (1, 64):
        text = tf.constant(texts[:size])
        image = tf.constant(images[:size])
        features = preprocessor({"text": text, "image": image})
        for name, stage in stages.items():
            if stage is None:
                function = tf.function(lambda f: model(f, training=False))
                arguments = (features,)
            else:
                function = tf.function(stage)
                arguments = (text, image)
            for _ in range(5):
                tf.nest.map_structure(lambda value: value.numpy(), function(*arguments))
            times = []
            for _ in range(repeats if size == 1 else max(5, repeats // 5)):
                started = time.perf_counter()
                tf.nest.map_structure(lambda value: value.numpy(), function(*arguments))
                times.append(time.perf_counter() - started)
            parts[f"{name} (batch {size})"] = float(np.median(times) * 1e3)
    return parts


def _meets(value, bar, higher_is_better=False):
    ok = value >= bar if higher_is_better else value <= bar
    return "meets" if ok else "MISSES"


def report(results, command):
    lines = [f"`{command}`", ""]
    lines += [
        "| setting | images | batch-1 p50 ms | batch-1 p99 ms | batch-64 samples/s "
        "| REST encode ms / 64 rows | REST decode ms / 64 rows | body KB |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for setting, by_kind in results.items():
        for kind, r in by_kind.items():
            lines.append(
                f"| {setting} | {kind} ({r['jpeg_kb']:.1f} KB) | {r['p50_ms']:.2f} | "
                f"{r['p99_ms']:.2f} | {r['batch64_per_s']:.0f} | {r['rest_encode_ms']:.2f} | "
                f"{r['rest_decode_ms']:.2f} | {r['rest_body_kb']:.0f} |"
            )
    lines += ["", "Targets: batch-1 p50 <= 5 ms, p99 <= 10 ms, batch-64 >= 500 samples/s.", ""]
    for setting, by_kind in results.items():
        for kind, r in by_kind.items():
            lines.append(
                f"- {setting}, {kind}: p50 {r['p50_ms']:.2f} ms "
                f"{_meets(r['p50_ms'], BARS['p50_ms'])}; p99 {r['p99_ms']:.2f} ms "
                f"{_meets(r['p99_ms'], BARS['p99_ms'])}; batch-64 {r['batch64_per_s']:.0f}/s "
                f"{_meets(r['batch64_per_s'], BARS['batch64_per_s'], True)}"
            )
    base_name, *others = list(results)
    base = results[base_name]
    for name in others:
        lines += ["", f"{name} / {base_name}, same run:", ""]
        for kind in base:
            other = results[name][kind]
            lines.append(
                f"- {kind}: p50 latency x{other['p50_ms'] / base[kind]['p50_ms']:.2f}, "
                f"p99 latency x{other['p99_ms'] / base[kind]['p99_ms']:.2f}, batch-64 throughput "
                f"x{other['batch64_per_s'] / base[kind]['batch64_per_s']:.2f}"
            )
    parts = {
        (setting, kind): r["parts"]
        for setting, by_kind in results.items()
        for kind, r in by_kind.items()
        if "parts" in r
    }
    if parts:
        columns = list(parts)
        lines += ["", "Where the time goes (median ms per call, each stage compiled alone):", ""]
        lines.append("| stage | " + " | ".join(f"{s}, {k}" for s, k in columns) + " |")
        lines.append("|---|" + "---:|" * len(columns))
        for stage in next(iter(parts.values())):
            lines.append(
                f"| {stage} | " + " | ".join(f"{parts[c][stage]:.2f}" for c in columns) + " |"
            )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="An exported version folder (default: build one).")
    parser.add_argument("--keras", help="The model's .keras file, to time its parts.")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--output", help="Also write the tables to this Markdown file.")
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    command = "python benchmarks/serving.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model, keras_file = args.model, args.keras
        if model is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            model, keras_file = prepare(folder)
        results = {}
        for name, env in SETTINGS.items():
            line = [sys.executable, __file__, "--child", "--model", str(model)]
            line += [
                "--calls",
                str(args.calls),
                "--batches",
                str(args.batches),
                "--data",
                str(folder),
            ]
            if keras_file:
                line += ["--keras", str(keras_file)]
            done = subprocess.run(
                line, env={**os.environ, **env}, capture_output=True, text=True, check=False
            )
            if done.returncode:
                sys.exit(f"{name} failed:\n{done.stderr[-3000:]}")
            results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    text = report(results, command.strip())
    print(text)
    if args.output:
        Path(args.output).write_text("# Serving latency\n\n" + text, encoding="utf-8")


if __name__ == "__main__":
    main()
