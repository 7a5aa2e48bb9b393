"""``python -m cartrisk``: the same as the ``cartrisk`` command."""

from __future__ import annotations

if __name__ == "__main__":
    from cartrisk.cli import main

    main()
