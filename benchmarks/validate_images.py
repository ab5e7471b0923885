"""Milliseconds per image of the image check that `train`, `validate` and `evaluate` run first.

Before training, every image is opened, checked for truncation and decoded by the
decoder training uses (`multimodal_tf.data.validate.check_image_files`), so that a bad
file is named before the first epoch. This times the decode step two ways, side by side
in one run and interleaved round by round, on the same images:

  eager        `ImageDecoder.decode_one` called eagerly: a dozen eager ops per image
  tf.function  the same function traced once and called as one graph (what the check uses)

and then the whole check (`check_image_files`: read, header, truncation, decode, sha256;
8 threads) as `train` runs it. Rows report wall milliseconds per image. Usage:

    .venv/bin/python benchmarks/validate_images.py [--data ../shared/data/mvsa_single/manifest.csv]
        [--num-images 1000] [--repeats 3]

Without `--data` (or when the file is missing) it writes `--num-images` synthetic
500x375 JPEGs to a temporary folder.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from synthetic_images import write_dataset  # noqa: E402

from multimodal_tf.data.manifest import read_manifest  # noqa: E402
from multimodal_tf.data.validate import _image_problem, check_image_files  # noqa: E402
from multimodal_tf.layers.preprocessing.image_decoder import ImageDecoder  # noqa: E402

MAX_PIXELS = 1 << 30


def time_decode(datas, decoder, decode):
    start = time.perf_counter()
    for data in datas:
        assert _image_problem(data, decoder, MAX_PIXELS, decode) is None
    return (time.perf_counter() - start) / len(datas) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="", help="a manifest; default: synthetic JPEGs")
    parser.add_argument("--num-images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        if args.data and Path(args.data).is_file():
            manifest, source = Path(args.data), args.data
        else:
            manifest = write_dataset(Path(folder), args.num_images, 500, 375)
            source = "synthetic JPEGs"
        records = [r for r in read_manifest(manifest) if r.image][: args.num_images]
        datas = [Path(record.image).read_bytes() for record in records]
        decoder = ImageDecoder(image_size=(8, 8))
        graph = tf.function(decoder.decode_one, input_signature=[tf.TensorSpec([], tf.string)])
        graph.get_concrete_function()
        rows = {"eager": decoder.decode_one, "tf.function": graph}
        time_decode(datas[:20], decoder, decoder.decode_one)  # warm-up
        times = {name: [] for name in [*rows, "check_image_files (8 threads)"]}
        for _ in range(args.repeats):
            for name, decode in rows.items():
                times[name].append(time_decode(datas, decoder, decode))
            start = time.perf_counter()
            problems, _ = check_image_files(records, source)
            assert not problems, problems[:3]
            times["check_image_files (8 threads)"].append(
                (time.perf_counter() - start) / len(records) * 1000
            )

    print(f"{len(records)} images from {source}, {args.repeats} rounds, {os.cpu_count()} cores")
    print()
    print("| header, truncation and decode, one thread | ms/image (median) | vs eager |")
    print("|---|---:|---:|")
    eager = statistics.median(times["eager"])
    for name, values in times.items():
        median = statistics.median(values)
        if name.startswith("check_image_files"):
            print()
            print(f"whole check as `train` runs it: {median:.2f} ms/image (median)")
        else:
            print(f"| {name} | {median:.2f} | {eager / median:.1f}x |")


if __name__ == "__main__":
    main()
