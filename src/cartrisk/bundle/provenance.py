"""Where a result came from: Python, platform, package versions and the git commit of the working directory.

Recorded in every bundle (``bundle.json``) and tagged on every MLflow run.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

__all__ = ["PACKAGES", "provenance"]

#: Packages whose versions are recorded.
PACKAGES = ("cartrisk", "numpy", "pandas", "scikit-learn", "scikit-survival", "xgboost", "shap", "optuna", "mlflow",
            "skops")


def _git_commit(where: Path) -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def provenance() -> dict[str, str]:
    """Python, platform, package versions and the git commit of the working directory."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "git_commit": _git_commit(Path.cwd())}
    for name in PACKAGES:
        try:
            info[f"version.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[f"version.{name}"] = "not installed"
    return info
