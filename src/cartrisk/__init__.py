"""cartrisk: survival after lymphoma fails CAR T-cell therapy (OS-2).

Importing the package does nothing but define names.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "load_bundle"]


def __getattr__(name: str):
    """Import heavy public names on first use, so that ``import cartrisk`` stays light."""
    if name == "load_bundle":
        from cartrisk.export import load_bundle

        return load_bundle
    raise AttributeError(f"module 'cartrisk' has no attribute {name!r}")
