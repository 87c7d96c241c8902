"""A tuning study (``python -m reengage.experiment tune FILE``): Optuna asks for settings, the runner trains them.

The results folder of a study holds, besides the usual manifest and run folders::

    DIR/study.db        the Optuna study (RDB storage, SQLite): every trial's settings, intermediate values, state
    DIR/trials.csv      one line per trial: number, state, value, settings (rewritten at the end of each launch)
    DIR/best.yaml       the best complete trial's settings as a config snippet (idem)
    DIR/.lock           one driver per study at a time

**A trial** is a setting of the search space (:mod:`reengage.experiment.tune_spec`) trained on the file's tuning
seeds, one after another; each seed is one run folder like any other run's (``runs/<env>/<variant>/<settings>/
s<seed>_<hash>/``), executed by the same local or Ray backend, with ``run.json``, ``status.json``, resume and
report as for ``run``. A trial's value is the mean over its seeds of the run metric (``auc``: the mean of the
column over the run's evaluations; ``final``: its last evaluation). A trial whose settings repeat an earlier
trial's finds that trial's runs finished and reuses them.

**Pruning** happens in the worker: after each evaluation it reports the trial's value so far to the study's
storage and asks the pruner (:func:`reengage.experiment.tune_study.evaluation_reporter`); a pruned run stops at
once, its ``status.json`` says ``pruned``, and the driver marks the trial PRUNED and starts the next.

**Interruptions.** Ctrl-C (or SIGTERM) stops the running runs with a checkpoint, as ``run`` does, and leaves their
trials RUNNING in the study; after a SIGKILL of the driver its workers stop themselves the same way. A relaunch
of the same command takes the study's lock, so every trial it finds RUNNING is one an earlier launch left: it
*continues* that trial (same number, same settings; its finished seeds are kept and its interrupted run resumes
from its newest checkpoint). Complete, pruned and failed trials are kept. ``trials`` is the study's size: a
relaunch asks only for the trials that the study still lacks.
"""

from __future__ import annotations

import csv
import json
import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from .backends import Backend
from .results_folder import STUDY_RECORD_FILES, run_folder_of, write_manifest
from .run_folder import BUSY, DONE, FAILED, PRUNED, RunFolder, RunFolderBusy, own_run_folder
from .spec import Experiment, ExperimentError, RunSpec, expand_experiment
from .tune_spec import TuneSpec, tuned_raw
from .tune_study import make_pruner, make_sampler, mean, metric_value, open_storage

STUDY_FILE = "study.db"
TRIALS_FILE, BEST_FILE = STUDY_RECORD_FILES
# the study's record of the file it was made from: a relaunch with other base settings would mix incomparable values
FINGERPRINT_ATTR = "reengage_base"
SETTINGS_ATTR = "settings"
RUNS_ATTR = "runs"
ERROR_ATTR = "error"


class StudyError(ValueError):
    """The study cannot be run as asked (another driver holds it, or it was made with other settings)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class ActiveTrial:
    """A trial being trained: its settings, its runs (one per tuning seed, in order) and the values so far."""

    number: int
    settings: dict[str, Any]
    runs: list[RunSpec]
    values: list[float] = field(default_factory=list)

    @property
    def next_run(self) -> RunSpec | None:
        return self.runs[len(self.values)] if len(self.values) < len(self.runs) else None


@dataclass
class StudySummary:
    target: int
    before: int = 0  # trials that had ended before this launch
    started: list[int] = field(default_factory=list)  # trials asked for in this launch
    continued: list[int] = field(default_factory=list)  # RUNNING trials of an earlier launch, continued
    completed: dict[int, float] = field(default_factory=dict)
    pruned: dict[int, int] = field(default_factory=dict)  # number -> the run step it was pruned at
    failed: dict[int, str] = field(default_factory=dict)
    # trials left RUNNING (a folder another process owns, a run stopped from outside): a relaunch continues them
    left: dict[int, str] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """As ``run``'s: 130 interrupted, 1 a trial failed, 75 a trial was left for a relaunch, else 0."""
        from .grid import BUSY_EXIT_CODE

        return 130 if self.interrupted else 1 if self.failed else BUSY_EXIT_CODE if self.left else 0


def default_storage(results_dir: Path) -> str:
    return f"sqlite:///{(Path(results_dir) / STUDY_FILE).resolve()}"


def fingerprint(experiment: Experiment) -> dict[str, Any]:
    """What a trial's value depends on besides its settings: the file's base configuration and the metric."""
    spec: TuneSpec = experiment.tune
    raw = experiment.raw
    variant = dict(raw["variants"][0])
    return json.loads(
        json.dumps(
            {
                "environment": variant.get("environments", raw.get("environments")),
                "algo": variant.get("algo"),
                "alpha": variant.get("alpha", 0),
                "overrides": raw.get("overrides") or {},
                "variant_overrides": variant.get("overrides") or {},
                "timesteps": variant.get("timesteps", raw.get("timesteps")),
                "seeds": list(spec.seeds),
                "metric": spec.metric,
                "column": spec.column,
            },
            sort_keys=True,
            default=repr,
        )
    )


def open_study(experiment: Experiment, storage_url: str) -> tuple[Any, Any]:
    """``(study, storage)``: the study named after the experiment in ``storage_url``, made on first use; StudyError
    (exit 2) when the stored one has another direction or was made from other base settings."""
    import optuna

    spec: TuneSpec = experiment.tune
    storage = open_storage(storage_url)
    direction = (
        optuna.study.StudyDirection.MAXIMIZE if spec.direction == "maximize" else optuna.study.StudyDirection.MINIMIZE
    )
    study = optuna.create_study(storage=storage, study_name=experiment.name, direction=direction, load_if_exists=True)
    stored = study.direction.name.lower()
    if stored != spec.direction:
        raise StudyError(
            f"the study {experiment.name!r} in {storage_url} was made with direction {stored}; the file "
            f"says {spec.direction}: use another --results (or delete {STUDY_FILE}) for a new study"
        )
    mine = fingerprint(experiment)
    theirs = study.user_attrs.get(FINGERPRINT_ATTR)
    if theirs is None:
        study.set_user_attr(FINGERPRINT_ATTR, mine)
    elif theirs != mine:
        changed = sorted(key for key in set(mine) | set(theirs) if mine.get(key) != theirs.get(key))
        raise StudyError(
            f"the study {experiment.name!r} in {storage_url} was made with other {', '.join(changed)} "
            f"(the study has {', '.join(f'{key}={theirs.get(key)!r}' for key in changed)}); its trials "
            f"are not comparable with this file's: use another --results (or delete {STUDY_FILE})"
        )
    existing = len(study.get_trials(deepcopy=False))
    return optuna.load_study(
        study_name=experiment.name,
        storage=storage,
        sampler=make_sampler(spec.sampler, offset=existing),
        pruner=make_pruner(spec.pruner),
    ), storage


def trial_runs(experiment: Experiment, settings: dict[str, Any]) -> list[RunSpec]:
    """The runs of a trial with ``settings``: the file's variant at that grid point, on the tuning seeds."""
    tuned = expand_experiment(tuned_raw(experiment.raw, experiment.tune, settings), name_default=experiment.name)
    return tuned.runs


def _run_entry(run: RunSpec) -> dict[str, Any]:
    return {**run.identity(), "timesteps": run.config["timesteps"]}


def write_study_manifest(results_dir: Path, experiment: Experiment, study: Any) -> None:
    """The manifest of every trial's runs, so that ``report``, ``records`` and ``list``-like readers see them."""
    runs: dict[str, dict[str, Any]] = {}
    for trial in study.get_trials(deepcopy=False):
        for entry in trial.user_attrs.get(RUNS_ATTR, []):
            runs.setdefault(entry["run_id"], entry)
    variant = str(experiment.raw["variants"][0]["name"])
    write_manifest(
        results_dir,
        {
            "name": experiment.name,
            "file": str(experiment.path) if experiment.path else None,
            "description": experiment.description,
            "baseline": variant,
            "success_threshold": experiment.success_threshold,
            "metric": experiment.metric or experiment.tune.column,
            "variants": [variant],
            "task_keys": [],
            "tune": {"study": experiment.name, "storage": STUDY_FILE},
            "runs": list(runs.values()),
        },
    )


def _describe(settings: dict[str, Any]) -> str:
    return ", ".join(
        f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in settings.items()
    )


def run_study(
    experiment: Experiment,
    results_dir: str | Path,
    backend: Backend,
    trials: int | None = None,
    storage_url: str | None = None,
    device: str = "cpu",
    threads: int = 1,
    stream: TextIO | None = None,
    progress_every: float = 30.0,
) -> StudySummary:
    """Bring the study to ``trials`` trials (default: the file's), continuing the trials an earlier launch left
    RUNNING; Ctrl-C stops the running runs with a checkpoint. StudyError when another driver holds the study."""
    import sys

    stream = sys.stderr if stream is None else stream
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    try:
        with own_run_folder(results_dir):
            return _run_study(
                experiment,
                results_dir,
                backend,
                trials or experiment.tune.trials,
                storage_url or default_storage(results_dir),
                device,
                threads,
                stream,
                progress_every,
            )
    except RunFolderBusy as busy:
        from .grid import BUSY_EXIT_CODE

        who = f"process {busy.owner_pid}" if busy.owner_pid is not None else "another process"
        raise StudyError(
            f"the study in {results_dir} is being run by {who}; wait for it to finish, or stop it "
            "(Ctrl-C or kill PID: it keeps its checkpoints) and run the command again",
            BUSY_EXIT_CODE,
        ) from None


def _run_study(
    experiment: Experiment,
    results_dir: Path,
    backend: Backend,
    target: int,
    storage_url: str,
    device: str,
    threads: int,
    stream: TextIO,
    progress_every: float,
) -> StudySummary:
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec: TuneSpec = experiment.tune
    name = experiment.name
    study, storage = open_study(experiment, storage_url)
    study_id = storage.get_study_id_from_name(name)
    summary = StudySummary(target=target)

    def say(line: str) -> None:
        print(f"[{name}] {line}", file=stream, flush=True)

    def fail(number: int, reason: str, trained: bool = True) -> None:
        """Mark the trial FAIL; ``trained``: it failed in this launch (exit code 1), not before it started."""
        # the reason is kept in the study (trials.csv shows it); a finished trial takes no attribute, so first
        storage.set_trial_user_attr(
            storage.get_trial_id_from_study_id_trial_number(study_id, number), ERROR_ATTR, reason
        )
        study.tell(number, state=TrialState.FAIL)
        if trained:
            summary.failed[number] = reason
        say(f"trial {number} FAILED: {reason}")

    active: list[ActiveTrial] = []
    ended = 0
    for frozen in study.get_trials(deepcopy=False):
        if frozen.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
            ended += 1
        elif frozen.state == TrialState.RUNNING:
            settings = frozen.user_attrs.get(SETTINGS_ATTR)
            if settings is None:  # stopped between being asked for and recording its settings: nothing trained
                fail(frozen.number, "interrupted before its settings were recorded", trained=False)
                ended += 1
                continue
            try:
                runs = trial_runs(experiment, settings)
            except ExperimentError as error:
                fail(frozen.number, str(error))
                continue
            active.append(ActiveTrial(frozen.number, settings, runs))
            summary.continued.append(frozen.number)
    summary.before = ended
    to_ask = max(0, target - ended - len(summary.failed) - len(active))
    write_study_manifest(results_dir, experiment, study)
    say(
        f"study {STUDY_FILE}: {ended} trial(s) ended before, {len(active)} to continue "
        f"({', '.join(map(str, summary.continued)) or 'none'}), {to_ask} to start; target {target}; "
        f"metric {spec.describe_metric()}; {spec.direction}"
    )

    ready: list[ActiveTrial] = list(active)  # trials whose next run is to be started
    in_flight: dict[str, ActiveTrial] = {}  # run_id -> trial

    def finish(trial: ActiveTrial) -> None:
        value = mean(trial.values)
        if math.isnan(value):
            fail(
                trial.number,
                f"its metric is NaN: the column {spec.column} is empty for this environment "
                "(tune.column: eval/mean_return reports every environment)",
            )
            return
        study.tell(trial.number, value)
        summary.completed[trial.number] = value
        say(f"trial {trial.number} complete: value {value:.4f} ({_describe(trial.settings)})")

    def prune(trial: ActiveTrial, step: int) -> None:
        study.tell(trial.number, state=TrialState.PRUNED)
        summary.pruned[trial.number] = step
        seed = trial.next_run.seed if trial.next_run else "?"
        say(f"trial {trial.number} pruned at step {step} of seed {seed} ({_describe(trial.settings)})")

    def settle(trial: ActiveTrial) -> bool:
        """Count the runs of ``trial`` already finished; True when its next run must be trained."""
        while (run := trial.next_run) is not None:
            folder = run_folder_of(results_dir, run.run_id)
            if folder.is_finished():
                trial.values.append(metric_value(_evaluations(folder), spec.metric, spec.column))
                continue
            status = folder.read_status() or {}
            if status.get("status") == PRUNED:
                prune(trial, int(status.get("step", 0)))
                return False
            return True
        finish(trial)
        return False

    def submit(trial: ActiveTrial) -> None:
        run = trial.next_run
        assert run is not None
        done = len(trial.values)
        backend.submit(
            {
                "run_dir": str(run_folder_of(results_dir, run.run_id).path.resolve()),
                "config": run.config,
                "seed": run.seed,
                "identity": run.identity(),
                "device": device,
                "threads": threads,
                "report": {
                    "storage": storage_url,
                    "study": name,
                    "trial": trial.number,
                    "offset": done * int(run.config["timesteps"]),
                    "previous": list(trial.values),
                    "metric": spec.metric,
                    "column": spec.column,
                    "pruner": spec.pruner,
                },
            }
        )
        in_flight[run.run_id] = trial

    def ask() -> ActiveTrial | None:
        frozen = study.ask(spec.distributions())
        settings = spec.settings(frozen.params)
        summary.started.append(frozen.number)
        try:
            runs = trial_runs(experiment, settings)
        except ExperimentError as error:
            fail(frozen.number, f"settings {_describe(settings)} refused: {error}")
            return None
        frozen.set_user_attr(SETTINGS_ATTR, settings)
        frozen.set_user_attr(RUNS_ATTR, [_run_entry(run) for run in runs])
        write_study_manifest(results_dir, experiment, study)
        say(f"trial {frozen.number} started: {_describe(settings)}")
        return ActiveTrial(frozen.number, settings, runs)

    def dispatch() -> None:
        nonlocal to_ask
        while backend.in_flight() < backend.capacity:
            trial = next((t for t in ready if t.next_run is None or t.next_run.run_id not in in_flight), None)
            if trial is None:
                if to_ask <= 0:
                    return
                to_ask -= 1
                new = ask()
                if new is not None:
                    ready.append(new)
                continue
            ready.remove(trial)
            if settle(trial):
                if trial.next_run.run_id in in_flight:
                    ready.append(trial)  # an identical trial trains this run now: this one takes its result
                else:
                    submit(trial)

    started = time.monotonic()
    last_line = started
    try:
        dispatch()
        while ready or in_flight or to_ask > 0:
            for outcome in backend.wait(timeout=1.0):
                trial = in_flight.pop(outcome["run_id"])
                status = outcome.get("status")
                if status == DONE:
                    ready.append(trial)
                elif status == PRUNED:
                    prune(trial, int(outcome.get("step", 0)))
                elif status == FAILED:
                    fail(trial.number, f"run {outcome['run_id']}: {outcome.get('error', 'unknown error')}")
                else:
                    reason = outcome.get("error") if status == BUSY else f"run {outcome['run_id']} {status}"
                    summary.left[trial.number] = str(reason)
                    say(f"trial {trial.number} left RUNNING (a relaunch continues it): {reason}")
            dispatch()
            if time.monotonic() - last_line >= progress_every:
                last_line = time.monotonic()
                say(
                    f"{len(summary.completed)} complete, {len(summary.pruned)} pruned, {len(summary.failed)} failed "
                    f"in this launch; {len(in_flight)} run(s) training, {to_ask} trial(s) to start | "
                    f"{_elapsed(last_line - started)} elapsed"
                )
    except KeyboardInterrupt:
        summary.interrupted = True
        say(
            f"interrupted: {len(in_flight)} running run(s) save a checkpoint and stop (Ctrl-C again to kill them "
            "at once)"
        )
        try:
            backend.stop()
            how = "stopped"
        except KeyboardInterrupt:
            backend.kill()
            how = "killed"
        say(
            f"{how} {len(in_flight)} running run(s); their trials stay RUNNING in the study and a relaunch of the "
            "same command continues them from their checkpoints"
        )
    finally:
        backend.close()
    write_trials_table(results_dir, study)
    best = best_trial(study)
    if best is not None:
        (results_dir / BEST_FILE).write_text(best_snippet(best, spec))
    return summary


def _elapsed(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{rest:02d}s"


def _evaluations(folder: RunFolder) -> list[dict[str, Any]]:
    with open(folder.evaluations_file, newline="") as handle:
        return list(csv.DictReader(handle))


def best_trial(study: Any) -> Any | None:
    """The best complete trial, or None when none is complete."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    pick = max if study.direction.name.lower() == "maximize" else min
    return pick(complete, key=lambda trial: trial.value)


def write_trials_table(results_dir: Path, study: Any) -> Path:
    """``trials.csv``: number, state, value, the last trial step reported, every setting, and why a trial failed."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({key for trial in trials for key in trial.user_attrs.get(SETTINGS_ATTR, {})})
    path = Path(results_dir) / TRIALS_FILE
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["number", "state", "value", "last_step", *keys, "note"])
        for trial in trials:
            settings = trial.user_attrs.get(SETTINGS_ATTR, {})
            steps = trial.intermediate_values
            value = trial.value if trial.value is not None else (steps[max(steps)] if steps else "")
            writer.writerow(
                [
                    trial.number,
                    trial.state.name,
                    value,
                    max(steps) if steps else "",
                    *[_cell(settings[key]) if key in settings else "" for key in keys],
                    trial.user_attrs.get(ERROR_ATTR, ""),
                ]
            )
    return path


def _cell(value: Any) -> Any:
    """A setting in trials.csv: numbers and words as they are, lists and mappings as JSON."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _nested(settings: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys (``algo_kwargs.reengage_matching``) as the nested mappings a config file writes."""
    nested: dict[str, Any] = {}
    for key, value in settings.items():
        node = nested
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def _set_value(value: Any) -> str:
    """``value`` as the right-hand side of ``--set key=VALUE`` (read back as YAML)."""
    if isinstance(value, str) and yaml.safe_load(value) == value:
        return value
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"))


def set_arguments(settings: dict[str, Any]) -> str:
    return " ".join(f"--set {shlex.quote(f'{key}={_set_value(value)}')}" for key, value in settings.items())


def best_snippet(trial: Any, spec: TuneSpec) -> str:
    """The best trial as YAML: a comment with its value, then its settings, pasteable into ``configs/*.yaml`` (a
    tuned profile, ``common`` or ``algos.<algo>``) or an experiment file's ``overrides``."""
    settings = trial.user_attrs.get(SETTINGS_ATTR, {})
    body = yaml.safe_dump(_nested(settings), sort_keys=False, default_flow_style=False)
    return (
        f"# best trial {trial.number}: value {trial.value:.6g} ({spec.describe_metric()}; {spec.direction})\n"
        f"# on the command line: {set_arguments(settings)}\n{body}"
    )
