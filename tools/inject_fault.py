#!/usr/bin/env python
"""Run one of the package's commands with a file-system fault injected: writes to matching paths fail.

    python tools/inject_fault.py --errno ENOSPC --path '*/checkpoint.tmp' --skip 1 -- train.py --logdir ...
    python tools/inject_fault.py --errno EACCES --path '/tmp/out/*' -- -m reengage.evaluate RUN --video ...

Why a wrapper, not ``chmod`` or a small disk: the tests and ``tools/cli_error_table.py`` must produce the same
faults on every machine, and as root (containers, CI) ``chmod a-w`` does not stop a write, while mounting a
read-only or a tiny file system needs privileges a test cannot count on. The wrapper installs a Python audit
hook (``sys.addaudithook``) in the command's own process, then runs the command as ``python`` would: every
open for writing, ``mkdir`` and rename whose path matches ``--path`` (a ``fnmatch`` pattern on the absolute
path) raises ``OSError(errno, strerror, path)``, exactly what the kernel's refusal raises in Python. Opens
for reading are left alone. The first ``--skip`` matching operations succeed (a disk that fills up after the
first checkpoint). ``--sigint-on PATTERN`` sends SIGINT to the process when an operation first matches
``PATTERN`` (the user's Ctrl-C at a known moment, for a stop whose checkpoint then fails).

Writes made by compiled code that bypasses Python's ``open`` (torch's own file writer) are not intercepted;
the package writes checkpoints and models through Python files (stable-baselines3's zip and pickle files).
"""

from __future__ import annotations

import argparse
import errno
import fnmatch
import os
import runpy
import signal
import sys
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("usage: inject_fault.py [options] -- SCRIPT.py ARGS... | -m MODULE ARGS...")
    split = argv.index("--")
    parser = argparse.ArgumentParser(
        prog="tools/inject_fault.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--errno", default=None, help="the fault: ENOSPC, EACCES, EROFS, ... (default: none)")
    parser.add_argument("--path", default="*", help="fnmatch pattern of the absolute paths that fail")
    parser.add_argument("--skip", type=int, default=0, help="matching operations that succeed first")
    parser.add_argument(
        "--sigint-on",
        default=None,
        metavar="PATTERN",
        help="send SIGINT to the process at the first operation on a path matching PATTERN",
    )
    return parser.parse_args(argv[:split]), argv[split + 1 :]


class FaultHook:
    """The audit hook: decides, for each file operation, whether it fails."""

    def __init__(self, error_number: int | None, pattern: str, skip: int, sigint_pattern: str | None) -> None:
        self.error_number, self.pattern, self.remaining_skips = error_number, pattern, skip
        self.sigint_pattern = sigint_pattern

    @staticmethod
    def _paths(event: str, args: tuple[Any, ...]) -> list[str]:
        if event == "open":
            path, _, flags = args
            if not isinstance(flags, int) or not flags & _WRITE_FLAGS:
                return []
            candidates = [path]
        elif event == "os.mkdir":
            candidates = [args[0]]
        elif event == "os.rename":
            candidates = [args[1]]
        else:
            return []
        return [
            os.path.abspath(os.fsdecode(path)) for path in candidates if isinstance(path, (str, bytes, os.PathLike))
        ]

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        for path in self._paths(event, args):
            if self.sigint_pattern is not None and fnmatch.fnmatch(path, self.sigint_pattern):
                self.sigint_pattern = None
                os.kill(os.getpid(), signal.SIGINT)
            if self.error_number is None or not fnmatch.fnmatch(path, self.pattern):
                continue
            if self.remaining_skips > 0:
                self.remaining_skips -= 1
                continue
            raise OSError(self.error_number, os.strerror(self.error_number), path)


def main(argv: list[str] | None = None) -> None:
    options, command = _parse(list(sys.argv[1:] if argv is None else argv))
    number = None
    if options.errno is not None:
        number = getattr(errno, options.errno, None)
        if not isinstance(number, int):
            raise SystemExit(f"inject_fault.py: unknown errno name {options.errno!r}")
    sys.addaudithook(FaultHook(number, options.path, options.skip, options.sigint_on))
    if command[:1] == ["-m"]:
        sys.argv = [command[1], *command[2:]]
        runpy.run_module(command[1], run_name="__main__", alter_sys=True)
    else:
        script = command[0]
        sys.argv = list(command)
        sys.path[0] = os.path.dirname(os.path.abspath(script))
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
