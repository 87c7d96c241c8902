"""``python -m reengage``: the package's version, and where its commands are.

python -m reengage --version
"""

from __future__ import annotations

import argparse
import sys

from reengage import __version__

COMMANDS = """commands:
  python train.py ...                        train one run (python train.py --help)
  python -m reengage.experiment ...          experiment files: run, list, report, reevaluate, scalars, records
  python -m reengage.evaluate RUN_DIR        evaluate a trained run (episodes, video, picture)
  python -m reengage.certify ...             robustness certificates for a trained policy
  python -m reengage.greedy --env ID         the greedy agents of DriveSeek and NoisySeek
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reengage",
        description=__doc__,
        epilog=COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"reengage {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
