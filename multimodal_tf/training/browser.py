"""Headless Chromium for looking at reports: the images that loaded, and screenshots."""

import re
import shutil
import subprocess
import tempfile
from pathlib import Path


def find_chromium(chromium=None):
    """The path of a Chromium binary: `chromium` itself, or found on `PATH`.

    Args:
        chromium: str, Path or None. A binary name or path; `None` tries
            `chromium`, `chromium-browser` and `google-chrome`.

    Example:
    >>> find_chromium()  # doctest: +SKIP
    '/usr/bin/chromium'
    """
    candidates = [chromium] if chromium else ["chromium", "chromium-browser", "google-chrome"]
    for candidate in candidates:
        found = shutil.which(str(candidate))
        if found:
            return found
    raise FileNotFoundError(
        f"Chromium not found: no {' or '.join(map(str, candidates))} executable. Install it "
        "(e.g. `apt-get install chromium`) or pass chromium='/path/to/chromium'."
    )


def _run_chromium(chromium, url, *flags, timeout=120):
    with tempfile.TemporaryDirectory(prefix="mtf-chromium-") as profile:
        command = [
            find_chromium(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            *flags,
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"{command[0]} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def figures_status(html_path, chromium=None, width=1280):
    """Loads a report in headless Chromium and reads how many of its images decoded.

    Args:
        html_path: str or Path. A page written by `write_report`.
        chromium: str, Path or None. The browser binary (see `find_chromium`).
        width: int. Window width in pixels (the page height depends on it).

    Returns:
        A dict of ints: `loaded`, `total` (images) and `height` (page pixels).

    Example:
    >>> figures_status("runs/demo/report.html")  # doctest: +SKIP
    {'loaded': 21, 'total': 21, 'height': 5210}
    """
    url = Path(html_path).resolve().as_uri()
    dom = _run_chromium(
        chromium, url, "--dump-dom", "--virtual-time-budget=5000", f"--window-size={width},900"
    )
    tag = re.search(r'<p id="figures-status"[^>]*>', dom)
    values = dict(re.findall(r'data-(loaded|total|height)="(\d+)"', tag.group(0) if tag else ""))
    if len(values) != 3:
        raise RuntimeError(
            f"{html_path}: no figures status in the loaded page (did the script run?)."
        )
    return {key: int(value) for key, value in values.items()}


def screenshot(html_path, png_path, chromium=None, width=1280, height=None):
    """Saves a PNG screenshot of a report page, rendered by headless Chromium.

    Args:
        html_path: str or Path. The page.
        png_path: str or Path. Where to write the PNG.
        chromium: str, Path or None. The browser binary (see `find_chromium`).
        width: int. Window width in pixels.
        height: int or None. Window height; `None` measures the whole page first.

    Returns:
        The Path of the PNG.

    Example:
    >>> screenshot("runs/demo/report.html", "docs/images/report.png")  # doctest: +SKIP
    PosixPath('docs/images/report.png')
    """
    if height is None:
        height = min(figures_status(html_path, chromium, width)["height"], 16000)
    png_path = Path(png_path).resolve()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    _run_chromium(
        chromium,
        Path(html_path).resolve().as_uri(),
        f"--screenshot={png_path}",
        f"--window-size={width},{height}",
        "--virtual-time-budget=5000",
    )
    if not png_path.is_file():
        raise RuntimeError(f"Chromium did not write {png_path}.")
    return png_path
