"""Render a report.html in headless Chromium and save a PNG screenshot.

Used to look at a report without a desktop, and by the test suite when a browser is
installed. Chromium runs with no network features and a throwaway profile, so the
screenshot shows what an offline reader sees.

Usage:
    python scripts/screenshot_report.py OUT/report.html report.png [--width 1400]
        [--height 4000]

Exit status: 0 on success, 1 when the browser fails, 2 when no browser is installed or
the report does not exist.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> Optional[str]:
    """The path of the first Chromium-like browser on PATH, or None."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(report: Path, png: Path, *, width: int = 1400, height: int = 4000,
               browser: Optional[str] = None, timeout_s: float = 120.0) -> None:
    """Save a `width` x `height` screenshot of `report` to `png`.

    Raises:
        FileNotFoundError: no browser is installed.
        RuntimeError: the browser failed or wrote no image.
    """
    browser = browser or find_browser()
    if browser is None:
        raise FileNotFoundError("no browser found: install chromium "
                                f"(looked for {', '.join(BROWSERS)} on PATH)")
    png = png.resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="discovery-chromium-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu",
                   "--disable-quic", "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--window-size={width},{height}",
                   f"--screenshot={png}", report.resolve().as_uri()]
        completed = subprocess.run(command, capture_output=True, text=True,
                                   timeout=timeout_s)
    if completed.returncode != 0 or not png.is_file():
        raise RuntimeError(f"{browser} failed (exit {completed.returncode}): "
                           f"{completed.stderr.strip()[-2000:]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the report.html to render")
    parser.add_argument("png", type=Path, help="where to save the screenshot")
    parser.add_argument("--width", type=int, default=1400, help="pixels (default 1400)")
    parser.add_argument("--height", type=int, default=4000, help="pixels (default 4000)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: {args.report}: no such file.", file=sys.stderr)
        return 2
    try:
        screenshot(args.report, args.png, width=args.width, height=args.height)
    except FileNotFoundError as error:
        print(f"error: {error}.", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
