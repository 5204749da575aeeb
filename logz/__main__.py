"""``python -m logz`` (also the entry for ``torchrun -m logz``)."""

from logz.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
