"""cartrisk: survival after lymphoma fails CAR T-cell therapy (OS-2).

Importing the package does nothing but define names.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
