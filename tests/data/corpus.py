"""A bad-input corpus, generated (not committed): one row for every problem kind.

`write_corpus(folder)` writes images and `manifest.csv` and returns the manifest
path and `{row: kind}` for every row that must be reported as an error (and the
warnings separately). The "good" rows include every image mode that is *not* an
error: CMYK and grayscale JPEG, palette, alpha and 16-bit PNG, animated GIF, BMP.
"""

import io

import numpy as np
from PIL import Image

MAX_PIXELS = 1_000_000  # the corpus' oversized image is 1200 x 1000


def _encode(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _picture(colour, size=(24, 16)):
    image = Image.new("RGB", size, colour)
    image.paste((0, 0, 0), (0, 0, size[0] // 3, size[1] // 3))
    return image


def _truncated_jpeg():
    # Cut after the header, inside the scan data: what a broken download looks like.
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), "JPEG")
    return data[: len(data) * 2 // 3]


def write_corpus(folder, outside):
    """Writes the corpus into `folder`; `outside` is a folder beside it (for escapes)."""
    images = folder / "images"
    images.mkdir(parents=True)
    red, blue = _picture((210, 30, 30)), _picture((30, 30, 210))
    files = {
        "rgb.jpg": _encode(red, "JPEG"),
        "rgb.png": _encode(blue, "PNG"),
        "other.jpg": _encode(_picture((220, 120, 20)), "JPEG"),
        "cmyk.jpg": _encode(red.convert("CMYK"), "JPEG"),
        "gray.jpg": _encode(blue.convert("L"), "JPEG"),
        "palette.png": _encode(red.convert("P"), "PNG"),
        "alpha.png": _encode(blue.convert("RGBA"), "PNG"),
        "sixteen.png": _encode(Image.fromarray(np.full((16, 24), 40000, np.uint16)), "PNG"),
        "animated.gif": _encode(red, "GIF", save_all=True, append_images=[blue], duration=50),
        "plain.bmp": _encode(blue, "BMP"),
        "train_copy.png": _encode(_picture((30, 160, 30)), "PNG"),
        "truncated.jpg": _truncated_jpeg(),
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20,
        "scan.tif": _encode(red, "TIFF"),
        "notes.png": b"this is a text file with an image name\n",
        "empty.jpg": b"",
        "huge.png": _encode(Image.new("L", (1200, 1000), 128), "PNG"),
    }
    for name, data in files.items():
        (images / name).write_bytes(data)
    (outside / "secret.png").write_bytes(files["rgb.png"])
    (images / "link.png").symlink_to(outside / "secret.png")

    # (id, text, image, label, split, expected kind or None)
    rows = [
        ("g1", "a warm red day", "images/rgb.jpg", "warm", "train", None),
        ("g2", "cold blue night", "images/rgb.png", "cold", "train", None),
        ("g3", "red cmyk print", "images/cmyk.jpg", "warm", "train", None),
        ("g4", "gray blue photo", "images/gray.jpg", "cold", "train", None),
        ("g5", "palette red", "images/palette.png", "warm", "train", None),
        ("g6", "blue with alpha", "images/alpha.png", "cold", "train", None),
        ("g7", "sixteen bit scan", "images/sixteen.png", "cold", "val", None),
        ("g8", "animated red gif", "images/animated.gif", "warm", "val", None),
        ("g9", "bitmap blue", "images/plain.bmp", "cold", "test", None),
        ("g10", "green field copy", "images/train_copy.png", "warm", "train", None),
        ("g11", "another green field", "images/train_copy.png", "warm", "test", None),
        ("g12", "A warm  RED day", "images/other.jpg", "warm", "test", None),
        ("b1", "missing file", "images/nope.jpg", "warm", "train", "missing_file"),
        ("b2", "truncated download", "images/truncated.jpg", "cold", "train", "unreadable_image"),
        ("b3", "corrupt png", "images/corrupt.png", "warm", "train", "unreadable_image"),
        ("b4", "a tiff scan", "images/scan.tif", "cold", "train", "unsupported_format"),
        ("b5", "text as png", "images/notes.png", "warm", "train", "unsupported_format"),
        ("b6", "zero bytes", "images/empty.jpg", "cold", "train", "zero_byte"),
        ("b7", "decompression bomb", "images/huge.png", "warm", "train", "too_many_pixels"),
        ("b8", "dot dot", "../outside/secret.png", "warm", "train", "path_escape"),
        ("b9", "absolute", str(outside / "secret.png"), "warm", "train", "path_escape"),
        ("b10", "symlink out", "images/link.png", "cold", "train", "path_escape"),
        ("b11", "   ", "images/rgb.jpg", "warm", "train", "empty_text"),
        ("b12", "LATIN1_TEXT", "images/rgb.jpg", "cold", "train", "invalid_encoding"),
        ("b13", "label nobody trains", "images/rgb.jpg", "lukewarm", "test", "unknown_label"),
        ("b14", "no label", "images/rgb.jpg", "", "train", "empty_label"),
        ("g1", "same id again", "images/rgb.jpg", "warm", "train", "duplicate_id"),
        ("b16", "bad split", "images/rgb.jpg", "warm", "holdout", "unknown_split"),
    ]
    lines = [b"id,text,image,label,split"]
    errors, good = {}, []
    for number, (row_id, text, image, label, split, kind) in enumerate(rows, start=1):
        text_bytes = (
            "caf\xe9 cr\xe8me".encode("latin-1") if text == "LATIN1_TEXT" else text.encode()
        )
        lines.append(
            b",".join([row_id.encode(), text_bytes, image.encode(), label.encode(), split.encode()])
        )
        if kind:
            errors[number] = kind
        else:
            good.append(number)
    manifest = folder / "manifest.csv"
    manifest.write_bytes(b"\n".join(lines) + b"\n")
    # Rows 10/11 share image bytes across train/test; rows 1/12 share their text.
    warnings = {10: "duplicate_image_across_splits", 1: "duplicate_text_across_splits"}
    return manifest, errors, warnings, good
