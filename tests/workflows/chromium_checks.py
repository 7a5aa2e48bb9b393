"""Headless Chromium checks of a rendered report, shared by the report's and the quickstart's tests: the page
fits 1280 px (no sideways scrolling, no element that scrolls inside), every figure loads, a full-page screenshot
is kept as a CI artefact (``CARTRISK_ARTIFACT_DIR``), and a PDF opens and counts its pages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from cartrisk.workflows.pdf import CHROMIUM_FLAGS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.environ.get("CARTRISK_ARTIFACT_DIR")
#: The quickstart report at 1280 px before issue 16 (the main branch's, n=600, 4 trials), kept beside the after.
BEFORE = Path(__file__).resolve().parents[2] / "docs" / "report-before-1280.png"


def _dom(page: Path, profile: Path, width: int = 1280) -> dict[str, int]:
    dom = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, "--hide-scrollbars", f"--user-data-dir={profile}",
                          f"--window-size={width},900",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    return {k: int(v) for k, v in re.findall(r'data-([a-z-]+)="(\d+)"', body)}


def screenshot(page: Path, shot: Path, profile: Path, height: int) -> Path:
    """A full-page screenshot of ``page`` at 1280 px."""
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, "--hide-scrollbars", f"--user-data-dir={profile}",
                    f"--screenshot={shot}", f"--window-size=1280,{height}", page.as_uri()], capture_output=True,
                   timeout=120, check=True)
    return shot


def check_in_chromium(html: str, tmp_path: Path, name: str) -> dict[str, int]:
    """Render in headless Chromium at 1280 px: every figure loads, nothing scrolls sideways (the page, and no
    element of it, even with every fold open); the screenshot is kept as a CI artefact."""
    page = tmp_path / f"{name}.html"
    page.write_text(html, encoding="utf-8")
    measured = _dom(page, tmp_path / "profile")
    assert measured["figures"] > 0 and measured["loaded"] == measured["figures"]
    assert measured["scroll-width"] == measured["viewport-width"] == 1280, measured
    assert measured["overflowing"] == 0, measured
    opened = tmp_path / f"{name}-open.html"
    opened.write_text(html.replace("<details", "<details open"), encoding="utf-8")
    wide_open = _dom(opened, tmp_path / "profile")
    assert wide_open["scroll-width"] == 1280 and wide_open["overflowing"] == 0, wide_open
    keep = Path(ARTIFACTS) if ARTIFACTS else tmp_path
    shot = screenshot(page, keep / f"{name}-1280.png", tmp_path / "profile", measured["scroll-height"])
    assert shot.stat().st_size > 10_000
    if ARTIFACTS and BEFORE.is_file():
        shutil.copyfile(BEFORE, keep / BEFORE.name)  # the report before issue 16, beside the one after
    return measured


def pdf_pages(path: Path) -> int:
    from pypdf import PdfReader

    reader = PdfReader(path)
    assert reader.pages[0].extract_text().strip()  # it opens and has text
    return len(reader.pages)
