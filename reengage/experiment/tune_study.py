"""The Optuna side of a tuning study: storage, sampler, pruner, the metric, and the worker's report to the study.

The driver (:mod:`reengage.experiment.tune`) and every worker open the same storage (by default the SQLite file
``results/NAME/study.db``). A worker training a trial's run reports after each evaluation and asks the pruner
whether to go on (:func:`evaluation_reporter`); the driver asks for trials and tells their outcomes.

**The step axis of a trial.** A trial trains its seeds one after another, so its intermediate values form one
curve: at step ``k * timesteps + s`` (seed number ``k`` of the trial at its step ``s``) the value is the mean of
the finished seeds' metrics and the metric of seed ``k`` so far. Every trial of a study has the same seeds and
step budget, so the pruner compares trials at the same point of the same schedule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

# how long a process waits for another's write to the SQLite file before giving up (seconds)
SQLITE_TIMEOUT = 60


def open_storage(url: str) -> Any:
    """Optuna's RDB storage at ``url``; SQLite waits for concurrent writers instead of failing at once."""
    import optuna

    engine_kwargs = {"connect_args": {"timeout": SQLITE_TIMEOUT}} if url.startswith("sqlite") else None
    return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)


def make_sampler(sampler: dict[str, Any], offset: int = 0) -> Any:
    """The study's sampler, seeded with the file's seed plus ``offset`` (the trials already in the study).

    A relaunch does not replay the random draws of the launch before it (which would ask for the same
    settings again): it continues the seed sequence where the study stands.
    """
    import optuna

    seed = int(sampler.get("seed", 0)) + offset
    if sampler["type"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    options = {"n_startup_trials": sampler["startup_trials"]} if "startup_trials" in sampler else {}
    return optuna.samplers.TPESampler(seed=seed, **options)


def make_pruner(pruner: dict[str, Any]) -> Any:
    import optuna

    common = {"n_warmup_steps": pruner.get("warmup_steps", 0), "interval_steps": pruner.get("interval_steps", 1)}
    if pruner["type"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.get("startup_trials", 5), **common)
    if pruner["type"] == "threshold":
        return optuna.pruners.ThresholdPruner(lower=pruner.get("lower"), upper=pruner.get("upper"), **common)
    return optuna.pruners.NopPruner()


def metric_value(rows: list[dict[str, Any]], metric: str, column: str) -> float:
    """A run's metric from its evaluations.csv rows: ``auc`` the mean of ``column``, ``final`` its last value.

    NaN when there is no evaluation, or when the column is empty (NaN) for this environment.
    """
    values = [float(row[column]) for row in rows if column in row and row[column] not in ("", None)]
    if not values:
        return float("nan")
    return float(sum(values) / len(values)) if metric == "auc" else values[-1]


def mean(values: list[float]) -> float:
    return float(sum(values) / len(values)) if values else float("nan")


def evaluation_reporter(report: dict[str, Any]) -> Callable[[int, list[dict[str, Any]]], None]:
    """The hook a worker passes to ``train_run`` for a trial's run (see the module's step axis).

    ``report`` holds ``storage`` (URL), ``study`` (name), ``trial`` (number), ``offset`` (the trial step of this
    run's step 0), ``previous`` (the metrics of the trial's seeds trained before this one), ``metric``, ``column``
    and ``pruner`` (the file's section). A step already reported (a resumed run evaluates again the steps after
    its checkpoint) is not reported twice; the pruner is asked all the same.
    """
    import optuna

    from .runner import RunPruned  # a worker has the runner imported already; the driver never needs it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(report["storage"])
    study = optuna.load_study(
        study_name=report["study"],
        storage=storage,
        pruner=make_pruner(report["pruner"]),
        sampler=optuna.samplers.RandomSampler(),
    )
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(report["study"]), int(report["trial"])
    )
    trial = optuna.trial.Trial(study, trial_id)
    reported = set(storage.get_trial(trial_id).intermediate_values)
    previous = [float(value) for value in report["previous"]]

    def on_evaluation(step: int, rows: list[dict[str, Any]]) -> None:
        value = mean(previous + [metric_value(rows, report["metric"], report["column"])])
        trial_step = int(report["offset"]) + int(step)
        if math.isnan(value):
            return  # nothing to compare (an empty column): the trial fails when it ends, with the reason
        if trial_step not in reported:
            trial.report(value, trial_step)
            reported.add(trial_step)
        if trial.should_prune():
            raise RunPruned(
                int(step),
                value,
                f"{report['pruner']['type']} pruner, trial {report['trial']} value "
                f"{value:.4g} at trial step {trial_step}",
            )

    return on_evaluation
