"""A synthetic image+text dataset whose label needs both modalities.

Each image shows one coloured shape; each caption names a colour and the
shape. The label says whether the caption gets the colour right (`match`) or
not (`mismatch`). Within each label, caption colours and image colours are
both uniformly distributed, so a text-only or an image-only model cannot beat
chance (50%); a model that fuses the two can approach 100%.

Only the colour decides the label: with shape mismatches too, a from-scratch
CPU model needed far more epochs than a quick start should take (shape is
learned slowly; colour in a few epochs).
"""

import csv
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from multimodal_tf.config import RunConfig, save_config

COLOURS = {
    "red": (215, 45, 40),
    "green": (45, 165, 65),
    "blue": (45, 85, 220),
    "yellow": (235, 200, 30),
}
SHAPES = ("circle", "square", "triangle")
CAPTIONS = (
    "a {colour} {shape}",
    "there is a {colour} {shape} in the picture",
    "this photo shows a {colour} {shape}",
    "look at this {colour} {shape}!",
    "my favourite {colour} {shape}",
    "A {colour} {shape} on a plain background.",
    "just a {colour} {shape} :)",
    "Can you see the {colour} {shape}?",
)
CLASS_NAMES = ("match", "mismatch")


def make_demo_dataset(output_dir, num_samples=2000, image_size=64, seed=0):
    """Writes `manifest.csv` and `images/` for the demo dataset.

    The manifest has no `split` column, so training assigns a stratified
    split. Images alternate between PNG and JPEG to exercise both decoders.

    Args:
        output_dir: str or Path. Created if needed.
        num_samples: int. Rows to write.
        image_size: int. Width and height of the images in pixels.
        seed: int. Same seed, same files.

    Returns:
        Path of the written `manifest.csv`. Beside it, `config.yaml` holds
        `demo_config()`, the run config to train on it with.

    Example:
    >>> manifest = make_demo_dataset("data/demo", num_samples=100)  # doctest: +SKIP
    """
    output_dir = Path(output_dir)
    (output_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    colours = list(COLOURS)
    rows = []
    for index in range(num_samples):
        colour, shape = rng.choice(colours), rng.choice(SHAPES)
        label = rng.choice(CLASS_NAMES)
        if label == "match":
            caption_colour = colour
        else:
            caption_colour = rng.choice([other for other in colours if other != colour])
        text = rng.choice(CAPTIONS).format(colour=caption_colour, shape=shape)
        extension = "png" if index % 2 == 0 else "jpg"
        name = f"images/{index:05d}.{extension}"
        _draw(colour, shape, image_size, rng).save(output_dir / name)
        rows.append({"id": f"demo-{index:05d}", "text": text, "image": name, "label": label})
    manifest = output_dir / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["id", "text", "image", "label"])
        writer.writeheader()
        writer.writerows(rows)
    save_config(demo_config(), output_dir / "config.yaml")
    return manifest


def demo_config():
    """The run config for the demo data: the defaults, with the scratch `conv` image encoder.

    The demo's flat shapes need no ImageNet features: the `conv` encoder
    (the design card's Conv2D branch) on 64x64 images learns their colours
    in a few epochs, needs no weights file, and so runs offline. A real
    dataset keeps the default pretrained backbone.

    Example:
    >>> demo_config().model.image_encoder
    'conv'
    """
    config = RunConfig()
    config.data.image_size = (64, 64)
    config.model.image_encoder = "conv"
    config.model.image_weights = ""
    return config


def _draw(colour, shape, image_size, rng):
    grey = rng.randint(120, 235)
    background = tuple(min(255, grey + rng.randint(-10, 10)) for _ in range(3))
    image = Image.new("RGB", (image_size, image_size), background)
    draw = ImageDraw.Draw(image)
    size = rng.uniform(0.35, 0.6) * image_size
    left = rng.uniform(0, image_size - size)
    top = rng.uniform(0, image_size - size)
    fill = tuple(min(255, max(0, channel + rng.randint(-25, 25))) for channel in COLOURS[colour])
    box = (left, top, left + size, top + size)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon(
            [(left + size / 2, top), (left, top + size), (left + size, top + size)], fill=fill
        )
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
