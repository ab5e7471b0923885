"""Peak memory (RSS) of one epoch through `make_dataset`, at two dataset sizes.

For each size, writes that many small synthetic JPEGs (128x96, quality 90) and a
manifest into a temporary folder, then runs one epoch in a fresh Python process
(so that peaks do not mix): `read_manifest`, `MultimodalPreprocessor.adapt` on the
texts, `make_dataset(..., shuffle=True)` iterated to the end, as training does.
The child reports `resource.getrusage(RUSAGE_SELF).ru_maxrss` before and after
the epoch. The streaming pipeline holds only paths and texts, so the peak should
barely grow with the number of images (target: 10x the images, <= 1.3x the peak).
Usage:

    .venv/bin/python benchmarks/memory.py [--sizes 2000 20000]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

TARGET_RATIO = 1.3
BATCH_SIZE = 32


def max_rss_mb():
    # Linux reports kilobytes.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(manifest, image_size):
    """One epoch in this process; prints a JSON line with the peaks."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from multimodal_tf.data.dataset import make_dataset
    from multimodal_tf.data.manifest import read_manifest
    from multimodal_tf.models.preprocessor import MultimodalPreprocessor

    records = read_manifest(manifest)
    class_names = sorted({record.label for record in records})
    preprocessor = MultimodalPreprocessor(sequence_length=32, image_size=image_size)
    preprocessor.adapt([record.text for record in records])
    dataset = make_dataset(records, preprocessor, class_names, BATCH_SIZE, shuffle=True, seed=0)
    before = max_rss_mb()
    started = time.perf_counter()
    count = 0
    for _, labels in dataset:
        count += int(labels.shape[0])
    seconds = time.perf_counter() - started
    result = {"images": count, "before_mb": before, "peak_mb": max_rss_mb(), "seconds": seconds}
    print(json.dumps(result))


def run_size(num_images, image_size):
    from helpers.synthetic_images import write_dataset

    with tempfile.TemporaryDirectory(prefix="multimodal_tf_memory_") as folder:
        started = time.perf_counter()
        manifest = write_dataset(folder, num_images, width=128, height=96)
        print(
            f"  wrote {num_images} JPEGs in {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        command = [sys.executable, __file__, "--child", str(manifest), "--image-size"]
        completed = subprocess.run(
            command + [str(size) for size in image_size],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    if completed.returncode != 0:
        raise RuntimeError(f"the child for {num_images} images failed:\n{completed.stderr}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(2000, 20000), metavar=("N1", "N2"))
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"))
    parser.add_argument("--child", metavar="MANIFEST", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, tuple(args.image_size))
        return
    results = {}
    for num_images in args.sizes:
        print(f"{num_images} images ...", file=sys.stderr, flush=True)
        results[num_images] = run_size(num_images, tuple(args.image_size))
    print(
        f"\none epoch of make_dataset (shuffle, batch {BATCH_SIZE}), 128x96 JPEGs -> "
        f"{args.image_size[0]}x{args.image_size[1]}, one fresh process per size\n"
    )
    print(f"{'images':>7}  {'peak before epoch':>17}  {'peak RSS':>9}  {'epoch':>7}")
    for result in results.values():
        print(
            f"{result['images']:7d}  {result['before_mb']:14.0f} MB  {result['peak_mb']:6.0f} MB"
            f"  {result['seconds']:5.1f} s"
        )
    small, large = (results[size]["peak_mb"] for size in args.sizes)
    ratio = large / small
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(
        f"\npeak ratio {args.sizes[1]}/{args.sizes[0]} images = {ratio:.2f}   "
        f"target <= {TARGET_RATIO:g}: {verdict}"
    )


if __name__ == "__main__":
    main()
