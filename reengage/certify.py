"""Entry point ``python -m reengage.certify``; the work is in :mod:`reengage.robustness.cli`."""

from reengage.robustness.cli import build_parser, main, run

__all__ = ["build_parser", "main", "run"]

if __name__ == "__main__":
    raise SystemExit(main())
