"""Images per second of the training input pipeline, side by side with two baselines.

Writes `--num-images` synthetic 500x375 JPEGs (quality 90) and a manifest into a
temporary folder, then measures, in one run and interleaved round by round:

  (a) `make_dataset(...)` exactly as training builds it (shuffle, batch 32),
  (b) a plain Pillow loop: `Image.open(path).convert("RGB").resize(size)` per file,
  (c) the decode-only bound: `tf.data` read_file + decode_jpeg, no resize,
  (d) `make_dataset(..., text_only=True)`: token ids only, no image read (the
      wide path's first stage, `training.wide_epochs`).

Warm-up: before the timed rounds every row runs 8 untimed batches (256 images),
so that functions are traced and kernels loaded. Each timed repeat is then one
full pass from a fresh iterator that reads exactly `cardinality` batches, as an
epoch of `model.fit` does; closing the iterator afterwards is timed apart. Besides
wall-clock images/s, each row reports the process CPU time per image, which other
jobs on a shared machine disturb much less. Rows marked `exp:` are experiments (a
changed decoder or pipeline structure), not what users run. Usage:

    .venv/bin/python benchmarks/input_pipeline.py [--num-images 2000] [--repeats 3]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import PIL  # noqa: E402
import tensorflow as tf  # noqa: E402
from helpers.synthetic_images import write_dataset  # noqa: E402
from PIL import Image  # noqa: E402

from multimodal_tf.data.dataset import make_dataset  # noqa: E402
from multimodal_tf.data.manifest import read_manifest  # noqa: E402
from multimodal_tf.layers.preprocessing.image_decoder import ImageDecoder  # noqa: E402
from multimodal_tf.models.preprocessor import MultimodalPreprocessor  # noqa: E402

AUTOTUNE = tf.data.AUTOTUNE
BATCH_SIZE = 32
WARMUP_BATCHES = 8
QUALITY_SAMPLE = 64
TARGET_VS_PILLOW = 3.0
TARGET_VS_DECODE = 0.8
CORES = os.cpu_count()


# === Experimental decoders: `ImageDecoder` with one change each ===
class AreaResizeDecoder(ImageDecoder):
    """exp: `method="area"` (a box filter: antialiased) instead of antialiased bilinear."""

    def decode_one(self, image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, 3])
        return tf.image.resize(image, self.image_size, method="area")


class AreaResizeUint8Decoder(AreaResizeDecoder):
    """exp: area resize, returned as uint8 (a 4x smaller batch); the model would cast."""

    def decode_one(self, image_bytes):
        return tf.cast(tf.round(super().decode_one(image_bytes)), tf.uint8)


class DctScaledAreaResizeDecoder(ImageDecoder):
    """exp: JPEGs decoded at 1/2, 1/4 or 1/8 scale (in the DCT) when still >= the target.

    libjpeg's scaled decoding (what Pillow's `Image.draft` uses) runs a smaller
    inverse DCT and filters as it shrinks; Huffman decoding still runs in full.
    The area resize does the rest. Other formats, and JPEGs smaller than twice
    the target, decode as before.
    """

    def decode_one(self, image_bytes):
        def scaled_jpeg():
            height, width = tf.unstack(tf.io.extract_jpeg_shape(image_bytes)[:2])
            target_height, target_width = self.image_size
            fits = [
                (height // ratio >= target_height) & (width // ratio >= target_width)
                for ratio in (2, 4, 8)
            ]
            branches = [
                lambda ratio=ratio: tf.io.decode_jpeg(image_bytes, channels=3, ratio=ratio)
                for ratio in (1, 2, 4, 8)
            ]
            return tf.switch_case(tf.reduce_sum(tf.cast(fits, tf.int32)), branches)

        image = tf.cond(
            tf.io.is_jpeg(image_bytes),
            scaled_jpeg,
            lambda: tf.io.decode_image(
                image_bytes, channels=3, dtype=tf.uint8, expand_animations=False
            ),
        )
        image.set_shape([None, None, 3])
        return tf.image.resize(image, self.image_size, method="area")


class PlainBilinearDecoder(ImageDecoder):
    """exp: bilinear without antialiasing. It aliases when shrinking: a cost floor only."""

    def decode_one(self, image_bytes):
        image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, 3])
        return tf.image.resize(image, self.image_size, method="bilinear")


EXPERIMENTAL_DECODERS = {
    "area resize": AreaResizeDecoder,
    "area resize, uint8 output": AreaResizeUint8Decoder,
    "DCT-scaled JPEG decode + area": DctScaledAreaResizeDecoder,
    "bilinear, no antialias": PlainBilinearDecoder,
}


def with_decoder(preprocessor, decoder_cls):
    variant = MultimodalPreprocessor.from_config(preprocessor.get_config())
    variant.image_decoder = decoder_cls(image_size=preprocessor.image_size, name="image_decoder")
    return variant


# === Pipelines ===
def decode_only_dataset(paths):
    def load(path):
        return tf.io.decode_jpeg(tf.io.read_file(path), channels=3)

    dataset = tf.data.Dataset.from_tensor_slices(paths).map(load, num_parallel_calls=AUTOTUNE)
    return dataset.batch(BATCH_SIZE).prefetch(AUTOTUNE)


def half_dataset(records, preprocessor, half):
    """exp: `make_dataset`'s structure with only the `text` or only the `image` half."""
    columns = {"text": [r.text for r in records], "image_path": [r.image for r in records]}
    dataset = tf.data.Dataset.from_tensor_slices(columns).shuffle(len(records), seed=0)

    def load(sample):
        if half == "text":
            return preprocessor({"text": sample["text"]})
        return preprocessor({"image": tf.io.read_file(sample["image_path"])})

    dataset = dataset.map(load, num_parallel_calls=AUTOTUNE)
    return dataset.batch(BATCH_SIZE).prefetch(AUTOTUNE)


def batch_then_map_dataset(records, preprocessor, class_names):
    """exp: `make_dataset` reordered: batch the raw samples, then preprocess whole batches."""
    index = {name: i for i, name in enumerate(class_names)}
    columns = {
        "text": [r.text for r in records],
        "image_path": [r.image for r in records],
        "label": [index[r.label] for r in records],
    }
    dataset = tf.data.Dataset.from_tensor_slices(columns).shuffle(len(records), seed=0)

    def load(batch):
        raw = {"text": batch["text"], "image": tf.map_fn(tf.io.read_file, batch["image_path"])}
        return preprocessor(raw), tf.one_hot(batch["label"], len(class_names))

    dataset = dataset.batch(BATCH_SIZE).map(load, num_parallel_calls=AUTOTUNE)
    return dataset.prefetch(AUTOTUNE)


def tf_method(dataset):
    """Reads `cardinality` batches from a fresh iterator, as `model.fit` does per epoch.

    Returns the image count and the seconds then spent closing the iterator (end
    of sequence, then deletion), which are kept out of images/s: with autotuning
    on, closing can wait for the autotuner's next round (see the README).
    """
    num_batches = int(dataset.cardinality())

    def run(warmup=False):
        iterator = iter(dataset)
        count = 0
        for _ in range(WARMUP_BATCHES if warmup else num_batches):
            count += int(tf.nest.flatten(next(iterator))[0].shape[0])
        closing = time.perf_counter()
        if not warmup:
            for _ in iterator:
                raise RuntimeError("the dataset yielded more batches than its cardinality")
        del iterator
        return count, time.perf_counter() - closing

    return run


def pillow_method(paths, image_size):
    width_height = (image_size[1], image_size[0])

    def run(warmup=False):
        chosen = paths[: WARMUP_BATCHES * BATCH_SIZE] if warmup else paths
        for path in chosen:
            np.asarray(Image.open(path).convert("RGB").resize(width_height))
        return len(chosen), 0.0

    return run


def build_methods(records, preprocessor, class_names, experiments):
    paths = [record.image for record in records]

    def training(chosen_preprocessor):
        return make_dataset(
            records, chosen_preprocessor, class_names, BATCH_SIZE, shuffle=True, seed=0
        )

    methods = {
        "(a) make_dataset": tf_method(training(preprocessor)),
        "(b) Pillow loop": pillow_method(paths, preprocessor.image_size),
        "(c) decode only": tf_method(decode_only_dataset(paths)),
        # What the wide path's first stage (training.wide_epochs) reads each epoch.
        "(d) make_dataset(text_only=True)": tf_method(
            make_dataset(
                records, preprocessor, class_names, BATCH_SIZE, shuffle=True, seed=0, text_only=True
            )
        ),
    }
    if experiments:
        for half in ("image", "text"):
            methods[f"exp: (a) {half} half only"] = tf_method(
                half_dataset(records, preprocessor, half)
            )
        methods["exp: (a) batch, then map"] = tf_method(
            batch_then_map_dataset(records, preprocessor, class_names)
        )
        for label, decoder_cls in EXPERIMENTAL_DECODERS.items():
            variant = with_decoder(preprocessor, decoder_cls)
            methods[f"exp: (a), {label}"] = tf_method(training(variant))
        options = tf.data.Options()
        options.autotune.enabled = False
        methods["exp: (a), tf.data autotune off"] = tf_method(
            training(preprocessor).with_options(options)
        )
    return methods


# === Measuring and reporting ===
def measure(methods, repeats):
    """Interleaves the methods round by round (rotating the order); times each pass."""
    for run in methods.values():
        run(warmup=True)
    names = list(methods)
    rates, cpu_ms, closing = ({name: [] for name in names} for _ in range(3))
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = time.perf_counter(), time.process_time()
            count, close_seconds = methods[name]()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            rates[name].append(count / (wall - close_seconds))
            cpu_ms[name].append(1000 * cpu / count)
            closing[name].append(close_seconds)
        print(f"  round {round_index + 1}/{repeats} done", file=sys.stderr, flush=True)
    return rates, cpu_ms, closing


def quality(records, preprocessor):
    """Mean |difference| (0-255 scale) from the shipped decoder's output, per resize."""
    blobs = [tf.io.read_file(record.image) for record in records[:QUALITY_SAMPLE]]
    shipped = preprocessor.image_decoder(tf.stack(blobs))
    width_height = (preprocessor.image_size[1], preprocessor.image_size[0])
    pillow = np.stack(
        [
            np.asarray(Image.open(r.image).convert("RGB").resize(width_height), np.float32)
            for r in records[:QUALITY_SAMPLE]
        ]
    )
    differences = {"(b) Pillow bicubic": float(np.mean(np.abs(pillow - shipped.numpy())))}
    for label, decoder_cls in EXPERIMENTAL_DECODERS.items():
        decoder = decoder_cls(image_size=preprocessor.image_size)
        images = tf.cast(tf.stack([decoder.decode_one(blob) for blob in blobs]), tf.float32)
        differences[f"exp: {label}"] = float(tf.reduce_mean(tf.abs(images - shipped)))
    return differences


def report(rates, cpu_ms, closing, differences, args, loads):
    medians = {name: statistics.median(values) for name, values in rates.items()}
    cpu = {name: statistics.median(values) for name, values in cpu_ms.items()}
    print(
        f"\n{args.num_images} JPEGs 500x375 q90 -> {args.image_size[0]}x{args.image_size[1]}, "
        f"batch {BATCH_SIZE}, {CORES} cores, TF {tf.__version__}, Pillow {PIL.__version__}.\n"
        f"Median of {args.repeats} full passes after a warm-up of {WARMUP_BATCHES} batches "
        f"per row. Load average before/after: {loads[0]:.1f}/{loads[1]:.1f}.\n"
        "images/s stops at the last batch; 'close s' (the longest of the passes) is the\n"
        "time then spent on end of sequence + deleting the iterator.\n"
    )
    width = max(len(name) for name in medians)
    print(
        f"{'pipeline':<{width}}  {'images/s':>8}  {'min':>5}  {'max':>5}  "
        f"{'vs (c)':>6}  {'CPU ms/img':>10}  {'close s':>7}"
    )
    decode = medians["(c) decode only"]
    for name, median in medians.items():
        low, high = min(rates[name]), max(rates[name])
        print(
            f"{name:<{width}}  {median:8.0f}  {low:5.0f}  {high:5.0f}  "
            f"{median / decode:6.2f}  {cpu[name]:10.2f}  {max(closing[name]):7.2f}"
        )
    # The Pillow loop uses one core; tf.data spreads over all of them when they are free.
    estimates = {
        "(a)/(b)": (
            medians["(a) make_dataset"] / medians["(b) Pillow loop"],
            CORES * cpu["(b) Pillow loop"] / cpu["(a) make_dataset"],
            TARGET_VS_PILLOW,
        ),
        "(a)/(c)": (
            medians["(a) make_dataset"] / decode,
            cpu["(c) decode only"] / cpu["(a) make_dataset"],
            TARGET_VS_DECODE,
        ),
    }
    print()
    for label, (measured, from_cpu, target) in estimates.items():
        verdict = "meets" if measured >= target else "MISSES"
        print(
            f"{label} = {measured:.2f} measured, target >= {target:g}: {verdict}"
            f"   ({from_cpu:.2f} from CPU time, if all {CORES} cores were free)"
        )
    if differences:
        print(f"\nmean |pixel difference| from the shipped decoder, {QUALITY_SAMPLE} images:")
        for label, value in differences.items():
            print(f"  {label:<{width}}  {value:5.2f} / 255")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, nargs=2, default=(224, 224), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-experiments", dest="experiments", action="store_false", help="rows (a)-(c) only"
    )
    args = parser.parse_args()
    if args.num_images < max(WARMUP_BATCHES * BATCH_SIZE, QUALITY_SAMPLE):
        parser.error(f"--num-images must be at least {WARMUP_BATCHES * BATCH_SIZE}")
    with tempfile.TemporaryDirectory(prefix="multimodal_tf_bench_") as folder:
        print(f"writing {args.num_images} JPEGs ...", file=sys.stderr, flush=True)
        records = read_manifest(write_dataset(folder, args.num_images, width=500, height=375))
        class_names = sorted({record.label for record in records})
        preprocessor = MultimodalPreprocessor(sequence_length=32, image_size=args.image_size)
        preprocessor.adapt([record.text for record in records])
        methods = build_methods(records, preprocessor, class_names, args.experiments)
        load_before = os.getloadavg()[0]
        rates, cpu_ms, closing = measure(methods, args.repeats)
        loads = (load_before, os.getloadavg()[0])
        differences = quality(records, preprocessor) if args.experiments else {}
        report(rates, cpu_ms, closing, differences, args, loads)


if __name__ == "__main__":
    main()
