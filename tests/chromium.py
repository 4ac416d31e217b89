"""Headless Chromium for page tests: the DOM after rendering, and a screenshot.

Debian's `chromium` (installed by `.ci/run` when missing). Locally a test without it is
skipped with the reason; in CI (`CI` set) it fails instead, so the page tests cannot silently
stop running. Every run gets its own profile directory and no network: any host name a page
asks for resolves to nothing, so a page that needs the network shows it.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser")
TIMEOUT_SECONDS = 90
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium() -> str:
    """The browser's path; skips the test locally and fails it in CI when there is none."""
    found = next((path for name in NAMES if (path := shutil.which(name))), None)
    if found is not None:
        return found
    reason = "headless Chromium is not installed (apt-get install chromium; .ci/run does)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the page tests")
    pytest.skip(reason)


def dump_dom(page: Path, *, script_ms: int = 0) -> str:
    """The DOM Chromium built from `page` (`script_ms`: time for a test's own script to run)."""
    budget = [f"--virtual-time-budget={script_ms}"] if script_ms else []
    return _run([*budget, "--dump-dom", page.resolve().as_uri()]).stdout


def screenshot(page: Path, out: Path, *, width: int = 1280, height: int = 2000) -> tuple[int, int]:
    """A PNG of `page` at the given window size; returns its (width, height) from the header."""
    _run([f"--screenshot={out}", f"--window-size={width},{height}", page.resolve().as_uri()])
    header = out.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{out} is not a PNG"
    size: tuple[int, int] = struct.unpack(">II", header[16:24])
    return size


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            chromium(),
            "--headless",
            "--disable-gpu",
            "--no-sandbox",  # root in containers; the pages are our own files
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--disable-dev-shm-usage",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={profile}",
            *args,
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done
