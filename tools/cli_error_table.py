#!/usr/bin/env python
"""Run every bad input and file-system fault of the commands as a real process, and write the table of what
each one answers: ``docs/cli_errors.md``.

    python tools/cli_error_table.py                  # runs the cases (a few minutes), writes docs/cli_errors.md
    python tools/cli_error_table.py --out FILE.md    # elsewhere
    python tools/cli_error_table.py --only video     # the cases whose name contains 'video' (no file written)

Each case is one command (``train.py``, ``python -m reengage.evaluate``, ``python -m reengage.certify``,
``python -m reengage.experiment``) in a scratch folder. The script checks what the project promises of every
one: the expected exit code (2 for input the user can fix, permissions and paths included; 1 for a fault of the
machine such as a full disk; 130 for a Ctrl-C), exactly one line on stderr, no traceback, and nothing created
where it should not be. It exits with code 1, naming the cases, if any case breaks a promise.

Faults that cannot be made for real on every machine are simulated with ``tools/inject_fault.py`` (a Python
audit hook that makes the matching writes raise the ``OSError`` the kernel would): a read-only folder (as root,
``chmod`` stops nothing), a read-only file system, a full disk. A name too long, a path through a file and a
missing folder are real.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INJECT = "tools/inject_fault.py"
DEFAULT_OUT = ROOT / "docs" / "cli_errors.md"
REGENERATE = "python tools/cli_error_table.py"
WORK = "$WORK"  # how the scratch folder is written in the table
TINY = [
    "--no-progress",
    "--set",
    "net_arch=[16,16]",
    "--set",
    "batch_size=32",
    "--set",
    "learning_starts=50",
    "--set",
    "buffer_size=2000",
    "--set",
    "eval_episodes=2",
]
LONG_NAME = "n" * 300  # longer than the 255 bytes a name may have on the usual file systems
CASE_TIMEOUT_S = 180


@dataclass
class Case:
    """One bad input or fault: the command (``{work}`` is the scratch folder), the exit code it must give, and
    paths (under ``{work}``, or absolute) that must not exist afterwards."""

    name: str
    argv: list[str]
    code: int
    fault: list[str] | None = None  # tools/inject_fault.py options: the simulated fault
    absent: list[str] = field(default_factory=list)
    before: Callable[[Path], Callable[[], None] | None] | None = None  # setup; returns a cleanup
    note: str = ""  # how the fault is made, for the table


def train(*args: str) -> list[str]:
    return ["train.py", *args]


def module(name: str, *args: str) -> list[str]:
    return ["-m", name, *args]


def _write_file(relative: str) -> Callable[[Path], None]:
    def setup(work: Path) -> None:
        (work / relative).parent.mkdir(parents=True, exist_ok=True)
        (work / relative).write_text("a file, not a folder\n")

    return setup


def _busy_folder(work: Path) -> Callable[[], None]:
    """A train.py that owns ``{work}/busy`` while the case runs; stopped (SIGTERM) afterwards."""
    folder = work / "busy"
    process = subprocess.Popen(
        [sys.executable, "train.py", "--timesteps", "1000000", "--logdir", str(folder), *TINY],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 120
    while True:
        try:
            if json.loads((folder / ".lock").read_text())["pid"] == process.pid:
                break
        except (OSError, ValueError, KeyError):
            pass
        if process.poll() is not None or time.time() > deadline:
            raise RuntimeError("the owner of the busy folder did not start")
        time.sleep(0.1)

    def stop() -> None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()

    return stop


def cases() -> list[Case]:
    """The cases, in the order of the table. ``{work}/base`` is a finished tiny run trained under noise."""
    base, seek = "{work}/base", ["--timesteps", "10", "--logdir", "{work}/bad"]
    run_tiny = ["--timesteps", "600", "--checkpoint-every", "200", "--set", "eval_freq=300", *TINY]
    certify = ["--states", "2", "--n0", "10", "--n", "20", "--episodes", "2"]
    return [
        # -- train.py: bad input --------------------------------------------------------------------------
        Case("empty --env", train("--env", "", *seek), 2, absent=["{work}/bad"]),
        Case("unknown environment", train("--env", "reengage/NoSuchEnv-v0", *seek), 2),
        Case("unknown algorithm", train("--algo", "ppo", *seek), 2),
        Case("--threads beyond the cores", train("--threads", "999", *seek), 2),
        Case("unknown device", train("--device", "tpu", *seek), 2),
        Case("unreadable --set value", train(*seek, "--set", "env_kwargs=[1,2"), 2),
        Case("empty --set value", train(*seek, "--set", "learning_rate="), 2),
        Case("unknown key", train(*seek, "--set", "learning_rat=0.1"), 2),
        Case("value out of range", train(*seek, "--set", "tau=2"), 2),
        Case("wrong type (top-level key)", train(*seek, "--set", "learning_rate=abc"), 2, absent=["{work}/bad"]),
        Case("wrong type (algo_kwargs, a list)", train(*seek, "--set", "algo_kwargs.gamma=[1]"), 2),
        Case("wrong type (algo_kwargs, a word)", train(*seek, "--set", "algo_kwargs.tau=yes"), 2),
        Case("wrong type (algo_kwargs.train_freq)", train(*seek, "--set", "algo_kwargs.train_freq=abc"), 2),
        Case("wrong type (policy_kwargs.net_arch)", train(*seek, "--set", "policy_kwargs.net_arch=abc"), 2),
        Case("wrong type (her)", train(*seek, "--set", "her.copy_info_dict=abc"), 2),
        Case("wrong type (env_kwargs)", train(*seek, "--set", "env_kwargs.d=abc"), 2),
        Case(
            "a combination stable-baselines3 refuses",
            train(*seek, "--set", "algo_kwargs.optimize_memory_usage=true"),
            2,
        ),
        Case("a class option given as a name", train(*seek, "--set", "policy_kwargs.activation_fn=foo"), 2),
        Case("unknown optimizer argument", train(*seek, "--set", "policy_kwargs.optimizer_kwargs={bogus: 1}"), 2),
        Case(
            "replay buffer larger than the memory",
            train(*seek, "--set", "buffer_size=100000000000"),
            2,
            absent=["{work}/bad"],
        ),
        Case(
            "--logdir inside a file",
            train("--timesteps", "10", "--logdir", "{work}/file.txt/run"),
            2,
            before=_write_file("file.txt"),
        ),
        Case(
            "run folder trained by another process",
            train("--timesteps", "10", "--logdir", "{work}/busy"),
            2,
            before=_busy_folder,
        ),
        Case(
            "--resume of a missing folder",
            train("--logdir", "{work}/missing", "--resume"),
            2,
            absent=["{work}/missing"],
        ),
        Case("--resume with a changed setting", train("--logdir", base, "--resume", "--set", "batch_size=64"), 2),
        # -- train.py: faults of the file system ------------------------------------------------------------
        Case(
            "run folder's parent is read-only",
            train(*run_tiny, "--logdir", "{work}/ro/run"),
            2,
            fault=["--errno", "EACCES", "--path", "{work}/ro/*"],
            absent=["{work}/ro/run"],
        ),
        Case(
            "run folder on a read-only file system",
            train(*run_tiny, "--logdir", "{work}/rofs/run"),
            2,
            fault=["--errno", "EROFS", "--path", "{work}/rofs/*"],
            absent=["{work}/rofs/run"],
        ),
        Case(
            "a name in --logdir longer than 255 bytes",
            train(*run_tiny, "--logdir", f"{{work}}/new/{LONG_NAME}/run"),
            2,
            absent=["{work}/new"],
        ),
        Case(
            "disk full when the run starts",
            train(*run_tiny, "--logdir", "{work}/full0/run"),
            1,
            fault=["--errno", "ENOSPC", "--path", "{work}/full0/run/*"],
        ),
        Case(
            "disk full at a later checkpoint",
            train(*run_tiny, "--logdir", "{work}/full1"),
            1,
            fault=["--errno", "ENOSPC", "--path", "*/full1/checkpoint.tmp/state.pkl", "--skip", "2"],
            absent=["{work}/full1/checkpoint.tmp"],
        ),
        Case(
            "checkpoint folder made unwritable mid-run",
            train(*run_tiny, "--logdir", "{work}/ro1"),
            2,
            fault=["--errno", "EACCES", "--path", "*/ro1/checkpoint.tmp", "--skip", "1"],
        ),
        Case(
            "Ctrl-C whose checkpoint cannot be written (disk full)",
            train(*run_tiny, "--logdir", "{work}/stop"),
            130,
            fault=[
                "--errno",
                "ENOSPC",
                "--path",
                "*/stop/checkpoint.tmp",
                "--skip",
                "1",
                "--sigint-on",
                "*/stop/evaluations.csv.tmp",
            ],
            note="Ctrl-C at step 300, after the step-200 checkpoint",
        ),
        # -- python -m reengage.evaluate --------------------------------------------------------------------
        Case("evaluate: missing run folder", module("reengage.evaluate", "{work}/nowhere"), 2),
        Case("evaluate: --episodes 0", module("reengage.evaluate", base, "--episodes", "0"), 2),
        Case("evaluate: unknown video format", module("reengage.evaluate", base, "--video", "{work}/v.avi2"), 2),
        Case(
            "evaluate: video into a missing folder",
            module("reengage.evaluate", base, "--video", "/nonexistent/x.gif"),
            2,
            absent=["/nonexistent"],
        ),
        Case(
            "evaluate: video into a read-only folder",
            module("reengage.evaluate", base, "--video", "{work}/videos/x.gif"),
            2,
            fault=["--errno", "EACCES", "--path", "{work}/videos/*"],
            absent=["{work}/videos/x.gif"],
            before=lambda work: (work / "videos").mkdir(),
        ),
        Case(
            "evaluate: picture on a full disk",
            module("reengage.evaluate", base, "--picture", "{work}/videos/x.png"),
            1,
            fault=["--errno", "ENOSPC", "--path", "{work}/videos/*"],
            absent=["{work}/videos/x.png"],
        ),
        # -- python -m reengage.certify ---------------------------------------------------------------------
        Case(
            "certify: a flag that contradicts the saved smoothing",
            module("reengage.certify", "--run", base, "--sigma", "0.3", *certify, "--out", "{work}/cert0"),
            2,
            absent=["{work}/cert0"],
        ),
        Case(
            "certify: --out is a file",
            module("reengage.certify", "--run", base, *certify, "--out", "{work}/file2.txt"),
            2,
            before=_write_file("file2.txt"),
        ),
        Case(
            "certify: --out in a read-only folder",
            module("reengage.certify", "--run", base, *certify, "--out", "{work}/cert/out"),
            2,
            fault=["--errno", "EACCES", "--path", "{work}/cert*"],
            absent=["{work}/cert"],
        ),
        Case(
            "certify: disk full while writing the report",
            module("reengage.certify", "--run", base, *certify, "--out", "{work}/cert2"),
            1,
            fault=["--errno", "ENOSPC", "--path", "{work}/cert2/*.json"],
        ),
        # -- python -m reengage.experiment ------------------------------------------------------------------
        Case("experiment run: unreadable experiment file", module("reengage.experiment", "run", "{work}/file.txt"), 2),
        Case(
            "experiment run: --results in a read-only folder",
            module("reengage.experiment", "run", "configs/experiments/smoke.yaml", "--results", "{work}/rores/smoke"),
            2,
            fault=["--errno", "EACCES", "--path", "{work}/rores*"],
            absent=["{work}/rores"],
        ),
        Case(
            "experiment report: missing results folder", module("reengage.experiment", "report", "{work}/noresults"), 2
        ),
        Case(
            "experiment report: --out in a read-only folder",
            module(
                "reengage.experiment", "report", "results/fig8_2_reduced", "--reps", "10", "--out", "{work}/rep/out"
            ),
            2,
            fault=["--errno", "EACCES", "--path", "{work}/rep*"],
            absent=["{work}/rep"],
        ),
        Case(
            "experiment report: disk full",
            module("reengage.experiment", "report", "results/fig8_2_reduced", "--reps", "10", "--out", "{work}/rep2"),
            1,
            fault=["--errno", "ENOSPC", "--path", "{work}/rep2/*.md"],
        ),
        Case(
            "experiment report: a name longer than 255 bytes",
            module(
                "reengage.experiment",
                "report",
                "results/fig8_2_reduced",
                "--reps",
                "10",
                "--out",
                f"{{work}}/rep3/{LONG_NAME}",
            ),
            2,
            absent=["{work}/rep3"],
        ),
        Case(
            "experiment records: missing results folder",
            module("reengage.experiment", "records", "{work}/noresults"),
            2,
        ),
    ]


@dataclass
class Outcome:
    case: Case
    code: int
    stderr: str
    problems: list[str]


def _fill(text: str, work: Path) -> str:
    return text.replace("{work}", str(work))


def _prepare(work: Path) -> None:
    """The finished run the evaluate, certify and resume cases use: tiny, trained under smoothing noise."""
    result = subprocess.run(
        [
            sys.executable,
            "train.py",
            "--timesteps",
            "200",
            "--logdir",
            str(work / "base"),
            "--set",
            "eval_freq=200",
            "--set",
            "observation_noise={kind: gaussian, sigma: 0.1}",
            *TINY,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=CASE_TIMEOUT_S,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"training the base run failed:\n{result.stderr[-3000:]}")


def run_case(case: Case, work: Path) -> Outcome:
    cleanup = case.before(work) if case.before is not None else None
    argv = [_fill(part, work) for part in case.argv]
    prefix = [INJECT, *[_fill(part, work) for part in case.fault], "--"] if case.fault else []
    try:
        result = subprocess.run(
            [sys.executable, *prefix, *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=CASE_TIMEOUT_S,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    finally:
        if cleanup is not None:
            cleanup()
    stderr = result.stderr.strip()
    problems = []
    if result.returncode != case.code:
        problems.append(f"exit code {result.returncode}, expected {case.code}")
    if "Traceback" in stderr:
        problems.append("a traceback on stderr")
    if len(stderr.splitlines()) != 1:
        problems.append(f"{len(stderr.splitlines())} lines on stderr, expected 1")
    for path in case.absent:
        if Path(_fill(path, work)).exists():
            problems.append(f"{path} was created")
    return Outcome(case, result.returncode, stderr, problems)


def _shown(text: str, work: Path) -> str:
    """A command or message as the table shows it: the scratch folder as $WORK, pids and times as words."""
    text = text.replace(str(work), WORK).replace(LONG_NAME, "n" * 8 + "...(300 bytes)")
    text = re.sub(r"process \d+ \(", "process PID (", text)
    text = re.sub(r"'kill \d+'", "'kill PID'", text)
    return text.replace("|", "\\|")


def _command(case: Case) -> str:
    parts = ["python", *case.argv]
    quoted = [
        part if part and re.fullmatch(r"[\w./{}=,:$+-]+", part) else "'" + part.replace("'", "'\\''") + "'"
        for part in parts
    ]
    return " ".join(quoted).replace("{work}", WORK).replace(LONG_NAME, "n" * 8 + "...(300 bytes)")


def _fault_words(case: Case, work: Path) -> str:
    if not case.fault:
        return ""
    options = dict(zip(case.fault[::2], case.fault[1::2]))
    words = f" (simulated: {options['--errno']} on writes to `{_shown(_fill(options['--path'], work), work)}`"
    if "--skip" in options:
        words += f" after the first {options['--skip']}"
    return words + (f"; {case.note}" if case.note else "") + ")"


def markdown(outcomes: list[Outcome], work: Path) -> str:
    lines = [
        "# What the commands answer to bad input and file-system faults",
        "",
        f"Generated by `{REGENERATE}` (it runs every case below as a real process, in a scratch folder written "
        f"`{WORK}`, and rewrites this page); do not edit by hand.",
        "",
        "Exit code 2: input the user can fix, a path or permissions included. Exit code 1: a fault of the "
        "machine (a full disk). Exit code 130: Ctrl-C. Every case prints exactly one line on stderr and no "
        "traceback, and creates nothing outside the paths it was given. Faults marked *simulated* are made by "
        "`tools/inject_fault.py`, which makes the matching writes raise the `OSError` the kernel would (as root, "
        "`chmod` stops no write; a read-only or full file system needs privileges); the others are real.",
        "",
        "| input or fault | command | exit code | message (stderr) |",
        "|---|---|---|---|",
    ]
    for outcome in outcomes:
        case = outcome.case
        name = _shown(case.name, work) + _fault_words(case, work)
        lines.append(f"| {name} | `{_command(case)}` | {outcome.code} | {_shown(outcome.stderr, work)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/cli_error_table.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=None, help=f"markdown file to write (default {DEFAULT_OUT.relative_to(ROOT)})")
    parser.add_argument(
        "--only",
        default=None,
        help="run only the cases whose name contains this (writes nothing unless --out is given)",
    )
    args = parser.parse_args(argv)
    selected = [case for case in cases() if args.only is None or args.only in case.name]
    if not selected:
        print(f"tools/cli_error_table.py: error: no case name contains {args.only!r}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else (DEFAULT_OUT if args.only is None else None)
    work = Path(tempfile.mkdtemp(prefix="cli-errors-"))
    started = time.perf_counter()
    try:
        _prepare(work)
        outcomes = []
        for number, case in enumerate(selected, start=1):
            outcome = run_case(case, work)
            outcomes.append(outcome)
            verdict = "ok" if not outcome.problems else "BROKEN: " + "; ".join(outcome.problems)
            print(f"[{number}/{len(selected)}] {case.name}: exit {outcome.code} {verdict}", file=sys.stderr, flush=True)
        text = markdown(outcomes, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if out is not None:
        out.write_text(text)
        print(f"wrote {out} ({len(outcomes)} cases, {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    broken = [outcome for outcome in outcomes if outcome.problems]
    for outcome in broken:
        print(
            f"broken: {outcome.case.name}: {'; '.join(outcome.problems)}\n  stderr: {outcome.stderr[-2000:]}",
            file=sys.stderr,
        )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
