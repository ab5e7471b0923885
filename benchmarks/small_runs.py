"""Interleaved rounds of the test suite's small `train()`, one run per arm in each round.

What `trace_sharing.py`, `schedule_trace.py` and `prepared_cache.py` share: the machines are shared
and noisy, so the arms of a comparison alternate within each round, after one
warm-up run (imports, spaCy) that is not counted.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' own small config

import multimodal_tf as mtf  # noqa: E402
from tests.conftest import make_tiny_config as small_config  # noqa: E402


def parse_args(doc):
    """`--rounds` and `--samples` (demo rows to train on), described by the script's `doc`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=120, help="Demo rows to train on.")
    return parser.parse_args()


def interleaved_runs(arms, rounds, samples, describe=lambda name: "", manifest=None):
    """Seconds of each arm's `train()` runs: `{name: [seconds per round]}`.

    Args:
        arms: dict. Name -> a callable that switches the arm on before its run; it
            may return `(data, config)` to train on instead of the manifest and the
            small config (a prepared folder, another budget).
        rounds: int. Runs per arm.
        samples: int. Demo rows (16x16 images) the small config trains on.
        describe: callable. Name -> more text for the run's printed line.
        manifest: str, Path or None. The rows to train on; None writes `samples`
            demo rows.
    """
    folder = tempfile.mkdtemp()
    if manifest is None:
        manifest = mtf.make_demo_dataset(f"{folder}/data", num_samples=samples, image_size=16)
    mtf.train(manifest, small_config(), f"{folder}/warm-up", verbose=0)
    seconds = {name: [] for name in arms}
    for round_index in range(rounds):
        for name, switch_on in arms.items():
            data, config = switch_on() or (manifest, small_config())
            start = time.perf_counter()
            mtf.train(data, config, f"{folder}/{round_index}-{name}", verbose=0)
            seconds[name].append(time.perf_counter() - start)
            print(
                f"round {round_index}: {name}: train() {seconds[name][-1]:.2f} s{describe(name)}",
                flush=True,
            )
    return seconds
