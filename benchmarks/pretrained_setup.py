"""The pretrained set-up that `wide_first.py`, `second_stage.py`, `tune_speed.py` and
`pretrained_run.py` share.

The pretrained model is `accuracy.py`'s: the default config with MobileNetV2 0.35
from a local weights file, at 128 px.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from multimodal_tf.config import RunConfig  # noqa: E402
from multimodal_tf.data.source import TrainingData  # noqa: E402
from multimodal_tf.training.run_model import adapted_preprocessor  # noqa: E402


def parse_args(description, argv=None, epochs=8):
    """`--data`, `--backbone-weights`, `--epochs`, `--repeats`; exits if a file is missing."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", required=True, help="manifest with train and val splits")
    parser.add_argument("--backbone-weights", required=True, help="MobileNetV2 0.35 no-top file")
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    for path in (args.data, args.backbone_weights):
        if not Path(path).is_file():
            sys.exit(f"{path} not found")
    return args


def pretrained_config(backbone_weights):
    """The default `RunConfig` with MobileNetV2 0.35 from `backbone_weights`, at 128 px."""
    config = RunConfig()
    config.data.image_size = (128, 128)
    config.model.image_encoder = "mobilenet_v2"
    config.model.image_weights = str(backbone_weights)
    config.model.backbone_alpha = 0.35
    return config


def pretrained_setup(manifest, backbone_weights):
    """`(config, source, preprocessor, train, val)` with both splits' images decoded.

    `train` and `val` are `train()`'s batches; one untimed pass over each has
    filled their decoded-image caches, so every timed variant starts from
    decoded images in memory.
    """
    config = pretrained_config(backbone_weights)
    data = config.data
    with tempfile.TemporaryDirectory() as folder:
        source = TrainingData.load(manifest, data, Path(folder), verbose=0)
    preprocessor = adapted_preprocessor(config, source.train_texts())
    train, val = (
        source.dataset(
            split, preprocessor, source.class_names, data.batch_size, split == "train", 1
        )
        for split in ("train", "val")
    )
    for batches in (train, val):
        for _ in batches:
            pass
    return config, source, preprocessor, train, val
