"""``python -m reengage.certify``: certify a trained policy; the certification is :mod:`reengage.robustness.cli`.

This command joins the two packages: it opens the training run a model comes from with
:class:`reengage.experiment.run_folder.RunFolder` (``--run DIR``, or the run folder a ``--model`` file sits in)
and hands it to the certification, which reads it through :class:`reengage.robustness.inputs.TrainingRun`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from reengage.experiment.run_folder import MODEL_FILE, NoRunError, RunFolder, UnreadableRunError
from reengage.file_faults import describe_fault, fault_exit_code
from reengage.robustness.cli import build_parser, jsonable, run

__all__ = ["build_parser", "main", "open_training_run", "run"]


def open_training_run(args: argparse.Namespace) -> RunFolder | None:
    """The run folder of ``--run DIR`` (ValueError if it holds no finished run), else the run folder the
    ``--model`` file sits in, if it holds a run; None otherwise."""
    if args.run:
        folder = RunFolder(args.run)
        try:
            folder.read_config()
        except (NoRunError, UnreadableRunError) as error:
            raise ValueError(f"--run: {error}; give the --logdir of a train.py run") from None
        if not folder.model_file.exists():
            raise ValueError(
                f"--run {folder.path} holds no {MODEL_FILE}: the run has not finished (resume it with train.py)"
            )
        return folder
    if args.model:
        folder = RunFolder(Path(args.model).parent)
        return folder if folder.holds_run() else None
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse has printed the usage and the bad option (code 2) or the help (0)
        return int(stop.code or 0)
    try:
        report = run(args, open_training_run(args))
    except ValueError as error:  # bad or unsound settings: say why, no traceback
        print(f"python -m reengage.certify: error: {error}", file=sys.stderr)
        return 2
    except OSError as fault:  # the file system refused --out or a file in it (permissions, a full disk)
        print(
            f"python -m reengage.certify: error: {describe_fault(fault)}; the report was not written", file=sys.stderr
        )
        return fault_exit_code(fault)
    print(json.dumps({k: report[k] for k in ("per_state",) if k in report}, default=jsonable)[:2000])
    print(f"report written to {Path(args.out) / 'report.json'} in {report['runtime_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
