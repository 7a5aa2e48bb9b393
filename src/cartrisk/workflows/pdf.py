"""The report as a PDF, printed by headless Chromium with the report's print stylesheet.

``cartrisk report --pdf`` renders the HTML, then asks Chromium (Debian's ``chromium`` package; ``.ci/run``
installs it) to print it: A4, each section from a new page, the folded material left out. Chromium runs
with a fresh profile in a temporary folder, no network services and no sandbox (it runs as root in CI).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from cartrisk.exceptions import CartriskError, ConfigError

__all__ = ["CHROMIUM_FLAGS", "find_chromium", "print_pdf"]

#: Flags for a headless Chromium that touches nothing outside its temporary profile.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium(chromium: str | Path | None = None) -> str:
    """The Chromium executable: ``chromium`` when given (a path or a name on PATH), else the first of
    chromium, chromium-browser, google-chrome on PATH.

    Raises
    ------
    ConfigError
        When none is found, with how to install one.
    """
    if chromium is not None:
        found = shutil.which(str(chromium))
        if found is None:
            raise ConfigError(f"--chromium {chromium!s}: no such executable; give the path of a Chromium or Chrome "
                              "binary, or leave the option out to use the one on PATH")
        return found
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ConfigError("--pdf prints the report with headless Chromium, and none was found on PATH (looked for "
                      f"{', '.join(_NAMES)}); install it (Debian: apt-get install chromium) or pass --chromium PATH")


def print_pdf(html_path: str | Path, pdf_path: str | Path, *, chromium: str | Path | None = None,
              timeout_s: float = 180.0) -> Path:
    """Print an HTML file to ``pdf_path`` with headless Chromium; returns ``pdf_path``.

    Raises
    ------
    ConfigError
        When no Chromium is found.
    CartriskError
        When Chromium fails or writes no PDF (its last lines of output are in the message).
    """
    exe = find_chromium(chromium)
    html_path, pdf_path = Path(html_path).resolve(), Path(pdf_path)
    with tempfile.TemporaryDirectory(prefix="cartrisk-chromium-") as tmp:
        out = Path(tmp) / "report.pdf"
        cmd = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={Path(tmp) / 'profile'}", "--no-pdf-header-footer",
               f"--print-to-pdf={out}", html_path.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise CartriskError(f"Chromium ({exe}) did not print {html_path} within {timeout_s:g} s; try again, or "
                                "open the HTML report and print it from a browser") from None
        if done.returncode != 0 or not out.is_file() or out.read_bytes()[:5] != b"%PDF-":
            tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
            raise CartriskError(f"Chromium ({exe}) could not print {html_path} to PDF (exit code {done.returncode})"
                                f": {tail or 'no output'}; open the HTML report and print it from a browser")
        pdf_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(out), pdf_path)
    return pdf_path
