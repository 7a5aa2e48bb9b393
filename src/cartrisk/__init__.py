"""cartrisk: survival after lymphoma fails CAR T-cell therapy (OS-2).

Importing the package does nothing but define names. The packages follow the data flow, each
importing only the ones below it (``tests/test_layout.py`` checks it)::

    cli -> workflows -> tuning -> tracking -> bundle -> groups -> explain, evaluation
        -> modelling -> estimators -> data

Shared helpers with no stage of their own: :mod:`cartrisk.exceptions`, :mod:`cartrisk.units`,
:mod:`cartrisk.config`, :mod:`cartrisk.plotting`, :mod:`cartrisk.progress`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

__version__ = "0.1.0"

__all__ = ["__version__", "lazy_exports", "load_bundle"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list]]:
    """``__getattr__`` and ``__dir__`` for a package that re-exports its modules' names on first use.

    A package's face hands on its modules' public names without importing them all (PEP 562), so that
    ``import cartrisk.tuning.studies`` does not load MLflow and ``cartrisk columns`` does not load pandera.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : mapping of name -> module
        Each public name and the module (relative to the package) that defines it.
    """

    def __getattr__(name: str) -> object:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list:
        return sorted(exports)

    return __getattr__, __dir__


__getattr__, _dir = lazy_exports(__name__, {"load_bundle": "bundle"})
