"""What caching a `prepare` folder's splits saves a small `train()`, side by side with streaming.

`train()` over a folder written by `multimodal-tf prepare` (as `ablate` trains
every run) used to stream every epoch: the shards were read and decoded again,
and each new iterator instantiated the preprocessing graph anew. A split that
fits `data.cache_decoded_images_mb` is now cached as a manifest's is. This
script trains the tests' small config on the same demo rows three ways in
interleaved rounds (the machines are shared and noisy): from the manifest, from
the prepared folder with the default budget (cached), and from the prepared
folder with `cache_decoded_images_mb: 0` (streamed, as before). It prints every
run's seconds and the ratio of the medians. Usage:

    .venv/bin/python benchmarks/prepared_cache.py --rounds 3
"""

import os
import statistics
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from small_runs import interleaved_runs, parse_args, small_config  # noqa: E402

import multimodal_tf as mtf  # noqa: E402
from multimodal_tf.cli import main as cli  # noqa: E402


def main():
    args = parse_args(__doc__)
    folder = Path(tempfile.mkdtemp())
    manifest = mtf.make_demo_dataset(folder / "data", num_samples=args.samples, image_size=16)
    prepared = folder / "prepared"
    cli(["prepare", "--manifest", str(manifest), "--output", str(prepared)])

    def streamed():
        config = small_config()
        config.data.cache_decoded_images_mb = 0
        return prepared, config

    arms = {
        "manifest": lambda: None,
        "prepared, cached": lambda: (prepared, small_config()),
        "prepared, streamed": streamed,
    }
    seconds = interleaved_runs(arms, args.rounds, args.samples, manifest=manifest)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    print(
        "medians: "
        + ", ".join(f"{name} {value:.2f} s" for name, value in medians.items())
        + f"; streamed / cached {medians['prepared, streamed'] / medians['prepared, cached']:.2f}x"
        + f" over {args.rounds} rounds of {args.samples} demo rows"
    )


if __name__ == "__main__":
    main()
