"""The HTML of a self-contained report page: one file with its figures inlined.

Markup only, no model or metric: `report.py` decides what the page says.
"""

import base64
import html
import io
from pathlib import Path


def note(text):
    """A highlighted paragraph of plain text."""
    return f'<p class="note">{html.escape(text)}</p>'


def shorten(text, limit=280):
    """`text` cut to `limit` characters, with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def figure(path, caption, escape=True):
    """A PNG file inlined as a data URI, with its caption (`escape=False`: caption is HTML)."""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    caption = html.escape(caption) if escape else caption
    return (
        f'<figure><img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def thumbnail(path, size=160):
    """An image file as an inlined JPEG thumbnail; a note if there is none or it is unreadable."""
    if not path:
        return '<div class="noimage">no image</div>'
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
    except OSError as error:
        return f'<div class="noimage">image unreadable: {html.escape(str(error))}</div>'
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="thumb" alt="sample image" src="data:image/jpeg;base64,{data}">'


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
  padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.8em 0; }
td, th { padding: 0.2em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
.note { background: #f5f5f0; border-left: 4px solid #c9b458; padding: 0.5em 0.8em; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr));
  gap: 12px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px; font-size: 0.9em; }
.card p { margin: 0.3em 0; }
.thumb { display: block; max-width: 100%; max-height: 160px; margin: auto; }
.id, #figures-status { color: #888; font-size: 0.85em; }
.noimage { color: #888; padding: 2em 0; text-align: center; }
.word { padding: 0 2px; border-radius: 3px; }
"""

# Counts the images that decoded, for a headless check that every figure shows.
STATUS_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  var status = document.getElementById("figures-status");
  status.dataset.loaded = loaded.length;
  status.dataset.total = images.length;
  status.dataset.height = Math.ceil(document.documentElement.scrollHeight);
  status.textContent = loaded.length + " of " + images.length + " images shown.";
});
"""


def page(title, body):
    """The whole page: `body` HTML under an `<h1>` title, with the style and image counter.

    Example:
    >>> page("run", note("hello")).startswith("<!DOCTYPE html>")
    True
    """
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}\n"
        f'<p id="figures-status">Images not counted yet.</p><script>{STATUS_SCRIPT}</script>'
        "</body></html>\n"
    )


__all__ = ["figure", "note", "page", "shorten", "thumbnail"]
