"""``python -m genbab ...`` is the ``genbab`` command."""
from genbab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
