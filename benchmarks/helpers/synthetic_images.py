"""Writes realistic-to-decode synthetic JPEGs and a manifest, for the benchmarks.

Flat colours compress to almost nothing and decode unrealistically fast, so each
image mixes a smooth gradient, a few filled shapes and per-pixel noise: the JPEG
keeps real high-frequency content (about 50-60 KB at 500x375, quality 90).
"""

import csv
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

WORDS = "red blue green small large round square bright dark striped photo of a the".split()
LABELS = ("cat", "dog")


def make_image(rng, width, height):
    """One RGB `PIL.Image`: gradient + shapes + noise."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    start, slope_x, slope_y = rng.uniform(0, 255, (3, 1, 1, 3)).astype(np.float32)
    pixels = start + (slope_x - 128) * x + (slope_y - 128) * y
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 8))):
        x0, x1 = sorted(rng.integers(0, width, 2).tolist())
        y0, y1 = sorted(rng.integers(0, height, 2).tolist())
        fill = tuple(rng.integers(0, 256, 3).tolist())
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1 + 1, y1 + 1), fill=fill)
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_dataset(folder, num_images, width, height, quality=90, seed=0):
    """Writes `num_images` JPEGs under `folder/images` and `folder/manifest.csv`.

    Args:
        folder: str or Path. An existing, empty folder.
        num_images: int. Images to write.
        width: int. Image width in pixels.
        height: int. Image height in pixels.
        quality: int. JPEG quality.
        seed: int. Same seed, same files.

    Returns:
        The manifest's Path.
    """
    folder = Path(folder)
    (folder / "images").mkdir()
    rng = np.random.default_rng(seed)
    # A small pool of base images, re-noised per file: full generation of 20,000
    # images would dominate the memory benchmark's runtime.
    pool = [make_image(rng, width, height) for _ in range(min(num_images, 64))]
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "image", "label"])
        for index in range(num_images):
            base = np.asarray(pool[index % len(pool)], dtype=np.int16)
            noisy = base + rng.integers(-6, 7, base.shape, dtype=np.int16)
            image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
            relative = f"images/{index:06d}.jpg"
            image.save(folder / relative, quality=quality)
            text = " ".join(rng.choice(WORDS, int(rng.integers(4, 12))).tolist())
            writer.writerow([f"s{index}", text, relative, LABELS[index % len(LABELS)]])
    return manifest
