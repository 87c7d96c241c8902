"""Command line of the experiment runner.

    python -m reengage.experiment run configs/experiments/smoke.yaml                 # local processes, one per core
    python -m reengage.experiment run FILE --workers 4 --results results/mine
    python -m reengage.experiment run FILE --backend ray                              # a local Ray instance
    python -m reengage.experiment run FILE --backend ray --address ray://HEAD:10001  # a Ray cluster
    python -m reengage.experiment tune FILE --trials 20 --workers 2                   # Optuna study (docs/tune.md)
    python -m reengage.experiment list FILE                                           # the runs, without running
    python -m reengage.experiment report results/smoke                                # curves, tables, statistics
    python -m reengage.experiment reevaluate results/smoke --episodes 1000            # final models on new episodes
    python -m reengage.experiment scalars results/smoke --from-step 2000              # mean losses near the end
    python -m reengage.experiment coverage --out docs/statistics.md                   # the report's tests, simulated

Re-running the same ``run`` command skips finished runs and resumes interrupted ones from their
checkpoints; a changed setting (in the file or in configs/) is a new run. Ctrl-C stops every run
(checkpoints are kept). A run whose folder another process trains (a second runner on the same results, or
train.py) is left to it. Exit codes: 0 all runs finished, 1 some failed, 2 bad input, 75 some runs were being
trained by another process (not trained here), 130 interrupted. ``tune`` uses the same codes for its trials
(1: a trial failed; 75: the study is being run by another process, or a trial's run folder is owned by one).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .spec import ExperimentError, load_experiment
from .stop_signals import ignore_stop_signals

if TYPE_CHECKING:
    from .backends import Backend
    from .spec import Experiment

PROG = "python -m reengage.experiment"


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def _folder_argument_problem(path: Path, option: str) -> str | None:
    """Why the folder argument ``option`` cannot be used (it is a file, or lies under one), else None."""
    from .run_folder import check_logdir_path

    try:
        check_logdir_path(path, option)
    except ValueError as error:
        return str(error)
    return None


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum`` (argparse turns the error into exit code 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _add_execution_options(parser: argparse.ArgumentParser, workers_help: str, progress_every: float) -> None:
    """The options `run` and `tune` share: where results go, and which backend trains how much at a time."""
    parser.add_argument("--results", default=None, help="results folder (default: results/<experiment name>)")
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray instance)")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help=f"{workers_help} (default: one per core; with Ray: the cluster's CPUs)",
    )
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--threads", type=_positive_int, default=1, help="torch threads per run (default 1)")
    parser.add_argument("--progress-every", type=float, default=progress_every, help="seconds between progress lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="{run,tune,list,report,reevaluate,scalars,records,coverage}"
    )

    run = commands.add_parser("run", help="execute an experiment file's runs")
    run.add_argument("file", help="experiment file (configs/experiments/*.yaml)")
    _add_execution_options(run, "runs at a time", progress_every=30.0)

    tune = commands.add_parser(
        "tune", help="an Optuna study over an experiment file's tune.search_space (docs/tune.md)"
    )
    tune.add_argument(
        "file", help="experiment file with a tune section (e.g. configs/experiments/tune_continuous_seek.yaml)"
    )
    tune.add_argument(
        "--trials",
        type=_positive_int,
        default=None,
        help="the study's size: trials ended or running, earlier launches included (default: tune.trials)",
    )
    tune.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL (default: sqlite:///RESULTS/study.db; a database server for a Ray cluster)",
    )
    _add_execution_options(tune, "trials trained at a time", progress_every=60.0)

    listing = commands.add_parser("list", help="print the runs an experiment file expands into")
    listing.add_argument("file")
    listing.add_argument("--results", default=None)

    report = commands.add_parser("report", help="curves, best settings and statistics of a results folder")
    report.add_argument("results_dir")
    report.add_argument("--out", default=None, help="output folder (default: RESULTS_DIR/report)")
    report.add_argument("--threshold", type=float, default=None, help="success threshold for steps-to-threshold")
    report.add_argument("--metric", default=None, help="evaluations.csv column (default: the success rate)")
    report.add_argument("--reps", type=_positive_int, default=2000, help="bootstrap resamples")
    report.add_argument("--aggregate", choices=("mean", "iqm"), default="mean", help="curve aggregate")
    report.add_argument(
        "--task-keys",
        nargs="+",
        default=None,
        metavar="KEY",
        help="grid keys that define separate tasks, compared within each "
        "(default: the experiment file's report.task_keys)",
    )
    report.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="ENV=VALUE",
        help="draw a dashed line at VALUE in ENV's panel (repeat per environment), e.g. the "
        "greedy agent's return from python -m reengage.greedy",
    )
    report.add_argument(
        "--setting",
        nargs=2,
        action="append",
        default=[],
        metavar=("VARIANT", "SETTING"),
        help="report and compare VARIANT at grid point SETTING (as the report prints it, e.g. "
        "learning_rate=0.001) instead of its best one; repeatable",
    )
    report.add_argument("--reference-label", default="reference", help="legend of the --reference lines")

    reevaluate = commands.add_parser("reevaluate", help="every finished run's final model on many new episodes")
    reevaluate.add_argument("results_dir")
    reevaluate.add_argument("--episodes", type=_positive_int, default=1000, help="episodes per run (default 1000)")
    reevaluate.add_argument(
        "--seed",
        type=_non_negative_int,
        default=None,
        help="seed of the first episode (default 10,000,000, far from the runs' own)",
    )
    reevaluate.add_argument(
        "--baseline", default=None, help="variant to compare with (default: the experiment file's report.baseline)"
    )
    reevaluate.add_argument("--reps", type=_positive_int, default=2000, help="bootstrap resamples")
    reevaluate.add_argument(
        "--metric",
        default=None,
        choices=("eval/success_ever", "eval/success_final"),
        help="success measure (default: the experiment file's report.metric when it is "
        "eval/success_final, else eval/success_ever)",
    )

    scalars = commands.add_parser("scalars", help="mean of TensorBoard scalars (losses) over each run's last steps")
    scalars.add_argument("path", help="a results folder or one run folder")
    scalars.add_argument(
        "--tag",
        action="append",
        default=None,
        metavar="TAG",
        help="scalar to average, e.g. train/critic_loss; repeatable (default: every train/ scalar)",
    )
    scalars.add_argument(
        "--from-step",
        type=_non_negative_int,
        default=0,
        help="average the values logged at steps >= this (default 0: the whole run)",
    )

    records = commands.add_parser(
        "records",
        help="the files of each finished run's compact record, one path a line "
        "(to commit: ... records RESULTS_DIR | xargs git add)",
    )
    records.add_argument("results_dir")

    coverage = commands.add_parser("coverage", help="false claims and power of the report's comparisons, simulated")
    coverage.add_argument(
        "--simulations",
        type=_positive_int,
        default=4000,
        help="datasets per scenario, seeds per group and hypothesis (default 4000)",
    )
    coverage.add_argument(
        "--seeds",
        type=_int_at_least(2),
        nargs="+",
        default=[3, 5, 10],
        metavar="N",
        help="seeds per group (default: 3 5 10)",
    )
    coverage.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the simulations (default 0)")
    coverage.add_argument(
        "--out", default=None, help="markdown file to write, e.g. docs/statistics.md (default: print only)"
    )
    return parser


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _results_and_backend(args: argparse.Namespace, experiment: Experiment) -> tuple[Path, Backend] | int:
    """The results folder (made now: an unwritable one is one line of error, before the first progress line) and
    the backend of a `run` or a `tune`; or exit code 2 after the message for a bad --address, --results or
    --backend."""
    if args.address and args.backend != "ray":
        return _error(f"--address {args.address!r} needs --backend ray")
    results = Path(args.results or Path("results") / experiment.name)
    problem = _folder_argument_problem(results, "--results")
    if problem:
        return _error(problem)
    from reengage.file_faults import make_folders

    from .backends import BackendUnavailable, make_backend

    try:
        backend = make_backend(args.backend, args.workers, args.address)
    except BackendUnavailable as error:
        return _error(str(error))
    make_folders(results)
    return results, backend


def cmd_run(args: argparse.Namespace) -> int:
    from .grid import run_grid

    try:
        experiment = load_experiment(args.file)
    except ExperimentError as error:
        return _error(str(error))
    prepared = _results_and_backend(args, experiment)
    if isinstance(prepared, int):
        return prepared
    results, backend = prepared
    # `kill PID` of a background grid stops it as cleanly as Ctrl-C does
    previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    print(
        f"[{experiment.name}] {len(experiment.runs)} runs, backend {backend.name} ({backend.capacity} at a time), "
        f"results in {results}",
        file=sys.stderr,
        flush=True,
    )
    try:
        summary = run_grid(experiment, results, backend, args.device, args.threads, progress_every=args.progress_every)
    except KeyboardInterrupt:
        # a third Ctrl-C, while the workers were being killed: they are gone or going (SIGKILL sent)
        ignore_stop_signals()
        print(
            f"[{experiment.name}] stopped at once; each run folder keeps its newest complete checkpoint",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    if summary.interrupted:
        ignore_stop_signals()  # the grid is stopping: another signal must not turn the exit into a traceback
    busy = f", {len(summary.busy)} owned by another process (not trained)" if summary.busy else ""
    print(
        f"[{experiment.name}] finished: {len(summary.done)} trained, {len(summary.skipped)} already done, "
        f"{len(summary.failed)} failed{busy} of {summary.total}",
        file=sys.stderr,
    )
    for run_id, reason in summary.failed.items():
        print(
            f"  failed {run_id}: {reason} (traceback in {results / 'runs' / run_id / 'status.json'})", file=sys.stderr
        )
    for run_id, pid in summary.busy.items():
        owner = f"process {pid}" if pid is not None else "another process"
        print(f"  owned by {owner}: {run_id} (run the command again once it finishes)", file=sys.stderr)
    if not summary.interrupted:
        print(f"report: {PROG} report {results}", file=sys.stderr)
    return summary.exit_code


def cmd_tune(args: argparse.Namespace) -> int:
    import importlib.util

    try:
        experiment = load_experiment(args.file)
    except ExperimentError as error:
        return _error(str(error))
    if experiment.tune is None:
        return _error(
            f"{args.file} has no tune section; add tune: {{trials: N, search_space: {{KEY: {{type: float, "
            "low: L, high: H}}} (docs/tune.md, configs/experiments/tune_continuous_seek.yaml)"
        )
    if importlib.util.find_spec("optuna") is None:
        return _error('tune needs Optuna: pip install -e ".[tune]" (or pip install "optuna>=3.5")')
    from .tune import StudyError, best_snippet, best_trial, run_study

    prepared = _results_and_backend(args, experiment)
    if isinstance(prepared, int):
        return prepared
    results, backend = prepared
    previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    print(
        f"[{experiment.name}] tuning {len(experiment.tune.search_space)} key(s), backend {backend.name} "
        f"({backend.capacity} trial(s) at a time), results in {results}",
        file=sys.stderr,
        flush=True,
    )
    try:
        summary = run_study(
            experiment,
            results,
            backend,
            trials=args.trials,
            storage_url=args.storage,
            device=args.device,
            threads=args.threads,
            progress_every=args.progress_every,
        )
    except StudyError as error:
        backend.close()
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        ignore_stop_signals()
        print(
            f"[{experiment.name}] stopped at once; each run folder keeps its newest complete checkpoint",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    if summary.interrupted:
        ignore_stop_signals()
    print(
        f"[{experiment.name}] this launch: {len(summary.started)} trial(s) started, {len(summary.continued)} "
        f"continued; {len(summary.completed)} complete, {len(summary.pruned)} pruned, {len(summary.failed)} failed"
        + (f", {len(summary.left)} left running" if summary.left else ""),
        file=sys.stderr,
    )
    import optuna

    from .tune import default_storage
    from .tune_study import open_storage

    study = optuna.load_study(
        study_name=experiment.name, storage=open_storage(args.storage or default_storage(results))
    )
    best = best_trial(study)
    if best is None:
        print(f"[{experiment.name}] no complete trial yet", file=sys.stderr)
    else:
        print(best_snippet(best, experiment.tune), end="")
        print(
            f"[{experiment.name}] trials: {results / 'trials.csv'}; best: {results / 'best.yaml'}; "
            f"curves: {PROG} report {results}",
            file=sys.stderr,
        )
    return summary.exit_code


def cmd_list(args: argparse.Namespace) -> int:
    from .results_folder import run_folder_of

    try:
        experiment = load_experiment(args.file)
    except ExperimentError as error:
        return _error(str(error))
    results = Path(args.results or Path("results") / experiment.name)
    problem = _folder_argument_problem(results, "--results")
    if problem:
        return _error(problem)
    for run in experiment.runs:
        state = "done" if run_folder_of(results, run.run_id).is_finished() else "todo"
        print(f"{state}  {run.run_id}  timesteps={run.config['timesteps']}")
    print(f"{len(experiment.runs)} runs", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import ReportError, write_report

    if args.threshold is not None and not 0 < args.threshold <= 1:
        return _error(f"--threshold {args.threshold} must be in (0, 1]")
    problem = _folder_argument_problem(Path(args.out), "--out") if args.out is not None else None
    if problem:
        return _error(problem)
    references: dict[str, float] = {}
    for text in args.reference:
        # the value follows the last '=': environment names (task panels) may contain '=' themselves
        env_id, separator, value = text.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not separator or not env_id or not math.isfinite(number):
            return _error(
                f"--reference {text!r} must be ENV=VALUE with a finite number, e.g. reengage/DriveSeek-v0=15.85"
            )
        references[env_id] = number
    try:
        path = write_report(
            Path(args.results_dir),
            Path(args.out) if args.out else None,
            threshold=args.threshold,
            metric=args.metric,
            reps=args.reps,
            aggregate=args.aggregate,
            task_keys=args.task_keys,
            references=references,
            reference_label=args.reference_label,
            settings=dict(args.setting),
        )
    except ReportError as error:
        return _error(str(error))
    print(path.read_text())
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_reevaluate(args: argparse.Namespace) -> int:
    import torch

    from .evaluation import SUCCESS_EVER, SUCCESS_FINAL
    from .reevaluate import DEFAULT_SEED, reevaluate_runs, summary_markdown, table_path
    from .report import ReportError
    from .results_folder import read_manifest

    torch.set_num_threads(1)
    results = Path(args.results_dir)
    seed = DEFAULT_SEED if args.seed is None else args.seed
    baseline, metric = args.baseline, args.metric
    manifest = read_manifest(results) or {}
    if baseline is None:
        baseline = manifest.get("baseline")
    if metric is None:
        metric = SUCCESS_FINAL if manifest.get("metric") == SUCCESS_FINAL else SUCCESS_EVER
    try:
        rows, missing = reevaluate_runs(
            results, args.episodes, seed, progress=lambda line: print(line, file=sys.stderr), metric=metric
        )
        variants = sorted({row.variant for row in rows})
        if baseline is not None and baseline not in variants:
            return _error(f"--baseline {baseline!r} is not a variant of these runs; variants: {', '.join(variants)}")
        table = summary_markdown(rows, baseline, args.reps, metric)
    except ReportError as error:
        return _error(str(error))
    path = table_path(results, args.episodes, seed, metric).with_suffix(".md")
    note = f"\n{len(missing)} run(s) not finished, left out: {', '.join(missing)}\n" if missing else ""
    path.write_text(
        f"<!-- {PROG} reevaluate {results} --episodes {args.episodes} --seed {seed} --metric {metric} -->\n"
        f"{table}{note}"
    )
    print(table + note)
    print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_scalars(args: argparse.Namespace) -> int:
    from .scalar_means import ScalarsError, scalar_means, scalars_markdown

    try:
        rows = scalar_means(Path(args.path), args.tag, args.from_step)
    except ScalarsError as error:
        return _error(str(error))
    print(scalars_markdown(rows, args.from_step), end="")
    return 0


def cmd_records(args: argparse.Namespace) -> int:
    from .results_folder import record_paths

    results = Path(args.results_dir)
    if not results.is_dir():
        return _error(
            f"results folder {str(results)!r} " + ("is a file, not a folder" if results.exists() else "not found")
        )
    paths = record_paths(results)
    if not paths:
        return _error(f"no finished run in {results} (a finished run's status.json says done)")
    for path in paths:
        print(path)
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    from .statistics import coverage_markdown, coverage_table

    out = Path(args.out) if args.out is not None else None
    if out is not None:
        if out.is_dir():
            return _error(f"--out {out} is a folder; give the path of a markdown file, e.g. docs/statistics.md")
        blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
        if blocking is not None:
            return _error(f"--out {out}: {blocking} is a file, not a folder")
    command = f"{PROG} coverage --simulations {args.simulations}"
    if list(args.seeds) != [3, 5, 10]:
        command += " --seeds " + " ".join(map(str, args.seeds))
    if args.seed:
        command += f" --seed {args.seed}"
    if out is not None:
        command += f" --out {out}"
    rows = coverage_table(args.simulations, args.seeds, seed=args.seed)
    text = coverage_markdown(rows, command)
    print(text, end="")
    if out is not None:
        from reengage.file_faults import make_folders

        make_folders(out.parent)
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    commands = {
        "run": cmd_run,
        "tune": cmd_tune,
        "list": cmd_list,
        "report": cmd_report,
        "reevaluate": cmd_reevaluate,
        "scalars": cmd_scalars,
        "records": cmd_records,
        "coverage": cmd_coverage,
    }
    try:
        return commands[args.command](args)
    except BrokenPipeError:
        # the reader of a listing went away (`... list FILE | head`): not an error of this command
        sys.stderr.close()
        return 0
    except OSError as fault:
        # the file system refused a write (permissions, a read-only or full disk, a name too long)
        from reengage.file_faults import describe_fault, fault_exit_code

        print(f"{PROG}: error: {describe_fault(fault)}; {_AFTER_FAULT[args.command]}", file=sys.stderr)
        return fault_exit_code(fault)


# what a file-system fault leaves, and how to go on, per command
_AFTER_FAULT = {
    "run": "runs finished before are kept, and so are checkpoints; then run the same command again to continue",
    "tune": "finished trials are kept in the study, and runs keep their checkpoints; then run the same command "
    "again to continue the study",
    "list": "nothing was written",
    "report": "the report was not written in full; then run the command again",
    "reevaluate": "the runs evaluated so far are kept in the table; then run the command again to continue",
    "scalars": "nothing was written",
    "records": "nothing was written",
    "coverage": "then run the command again",
}


if __name__ == "__main__":
    sys.exit(main())
