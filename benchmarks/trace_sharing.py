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

import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from small_runs import interleaved_runs, parse_args  # noqa: E402

from multimodal_tf.data import dataset  # noqa: E402


def share(on):
    def switch_on():
        dataset.SHARE_TRACES = on

    return switch_on


def main():
    args = parse_args(__doc__)
    arms = {"traced per dataset": share(False), "shared": share(True)}
    seconds = interleaved_runs(arms, args.rounds, args.samples)
    off, on = (statistics.median(values) for values in seconds.values())
    print(f"train() median: {off:.2f} s traced per dataset, {on:.2f} s shared: {off / on:.2f}x")


if __name__ == "__main__":
    main()
