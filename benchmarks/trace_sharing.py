"""What sharing one traced preprocessor between a run's datasets saves, side by side.

Every `tf.data` map traces its function anew; `train()` maps the preprocessor
over 6 to 16 datasets. `multimodal_tf.data.dataset.shared_preprocess` traces it
once per preprocessor. This script runs the same small `train()` with the
sharing on and off, in interleaved rounds (the machines are shared and noisy),
and prints the seconds of each run and the ratio of the medians. A small run is
where the fixed cost shows: the test suite's runs and a user's first try.
Usage:

    .venv/bin/python benchmarks/trace_sharing.py --rounds 3 --samples 120
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

import multimodal_tf as mtf  # noqa: E402
from multimodal_tf.data import dataset  # noqa: E402
from tests.conftest import make_tiny_config as small_config  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=120, help="Demo rows to train on.")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    manifest = mtf.make_demo_dataset(f"{folder}/data", num_samples=args.samples, image_size=16)
    mtf.train(manifest, small_config(), f"{folder}/warm-up", verbose=0)  # imports, spaCy
    seconds = {True: [], False: []}
    for round_index in range(args.rounds):
        for share in (False, True):
            dataset.SHARE_TRACES = share
            start = time.perf_counter()
            mtf.train(manifest, small_config(), f"{folder}/{share}-{round_index}", verbose=0)
            seconds[share].append(time.perf_counter() - start)
            print(f"round {round_index}: shared={share}: {seconds[share][-1]:.2f} s", flush=True)
    off, on = (statistics.median(seconds[share]) for share in (False, True))
    print(f"train() median: {off:.2f} s traced per dataset, {on:.2f} s shared: {off / on:.2f}x")


if __name__ == "__main__":
    main()
