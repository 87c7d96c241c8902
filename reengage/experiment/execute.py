"""Execute one run of an experiment inside a worker (a local process or a Ray task).

The run folder is the run's whole state, so any backend can pick a run up where another left it:

* ``run.json``: the run's identity (environment, variant, grid point, seed, configuration hash);
* what :func:`reengage.experiment.runner.train_run` writes (``config.yaml``, ``evaluations.csv``,
  ``checkpoint/``, ``model.zip``, TensorBoard events);
* ``status.json``: written last, ``{"status": "done", ...}``, ``{"status": "failed", "error": ...}``,
  ``{"status": "interrupted", "step": ...}`` (SIGTERM/SIGINT: stopped after a checkpoint, resumed next time) or,
  for a trial of a tuning study, ``{"status": "pruned", "step": ..., "value": ...}`` (its pruner stopped it).

A job of a tuning study (:mod:`reengage.experiment.tune`) carries ``report``: after each evaluation the worker
reports the trial's value to the study's storage and asks its pruner whether to go on
(:func:`reengage.experiment.tune_study.evaluation_reporter`).

A worker owns the run folder (:func:`reengage.experiment.run_folder.own_run_folder`) from before it prepares
the folder until the status is written. A folder another live process owns (a second runner on the same
results folder, or ``train.py`` on it) is not touched: the worker reports ``{"status": "busy", "owner_pid": ...}``
to the driver and writes nothing, since the status file is the owner's to write.

A folder with ``config.yaml`` and a checkpoint is an interrupted run and is resumed
(``train_run(..., resume=True)``); one that died before its first checkpoint starts again. The names of these
files, and what counts as a finished run, are :mod:`reengage.experiment.run_folder`'s.
"""

from __future__ import annotations

import shutil
import time
import traceback
from pathlib import Path
from typing import Any

from .run_folder import (
    BUSY,
    DONE,
    FAILED,
    INTERRUPTED,
    KEPT_ON_RESTART,
    PRUNED,
    RunFolder,
    RunFolderBusy,
    own_run_folder,
)


def _prepare(folder: RunFolder) -> bool:
    """Decide between resuming and starting afresh; returns ``resume``."""
    from .checkpoint import checkpoint_config, find_checkpoint

    if find_checkpoint(folder.checkpoint_dir) is not None and (
        folder.config_file.exists() or checkpoint_config(folder.checkpoint_dir) is not None
    ):
        return True  # a lost config.yaml is restored from the checkpoint's copy
    if not folder.config_file.exists():
        return False
    # started but killed before its first checkpoint: nothing to resume, so start it again
    for path in folder.path.iterdir():
        if path.name in KEPT_ON_RESTART:
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return False


def execute_run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one run (or resume it) and record the outcome in ``status.json``; never raises.

    ``job`` holds ``run_dir``, ``config``, ``seed``, ``identity``, ``device`` and ``threads``, and for a trial of a
    tuning study ``report`` (where and what to report after each evaluation).
    Returns the status written, with ``run_id`` added; for a folder another process owns, the ``busy``
    outcome, written nowhere.
    """
    folder = RunFolder(Path(job["run_dir"]))
    try:
        with own_run_folder(folder.path):
            return {**_execute_owned(job, folder), "run_id": job["identity"]["run_id"]}
    except RunFolderBusy as busy:
        return {"status": BUSY, "owner_pid": busy.owner_pid, "error": str(busy), "run_id": job["identity"]["run_id"]}
    except OSError as error:  # the lock file cannot be made (a read-only folder): reported like a failed run
        return {"status": FAILED, "error": f"{type(error).__name__}: {error}", "run_id": job["identity"]["run_id"]}


def _execute_owned(job: dict[str, Any], folder: RunFolder) -> dict[str, Any]:
    """:func:`execute_run` once the folder is this process's: train, then write and return the status."""
    outcome: dict[str, Any]
    finished = folder.read_status() if folder.is_finished() else None
    if finished is not None:
        # another runner finished it after this one was launched: nothing to train, nothing to write
        return {**finished, "already": True}
    try:
        import torch

        from .runner import RunInterrupted, RunPruned, train_run

        torch.set_num_threads(int(job.get("threads", 1)))
        on_evaluation = None
        if job.get("report") is not None:
            from .tune_study import evaluation_reporter

            on_evaluation = evaluation_reporter(job["report"])
        folder.clear_status()
        resume = _prepare(folder)
        folder.write_identity(job["identity"])
        start = time.perf_counter()
        # verbose=False: a grid's progress lines come from the driver, not from every worker's evaluations
        train_run(
            job["config"],
            int(job["seed"]),
            folder.path,
            job.get("device", "cpu"),
            resume=resume,
            progress=False,
            verbose=False,
            on_evaluation=on_evaluation,
        )
        outcome = {
            "status": DONE,
            "seconds": time.perf_counter() - start,
            "timesteps": job["config"]["timesteps"],
            "resumed": resume,
        }
    except RunInterrupted as stop:
        outcome = {"status": INTERRUPTED, "step": stop.step, "signal": stop.signal_number}
    except RunPruned as pruned:
        outcome = {"status": PRUNED, "step": pruned.step, "value": pruned.value, "reason": str(pruned)}
    except Exception as error:  # noqa: BLE001  (a failed run is reported, and the grid goes on)
        outcome = {
            "status": FAILED,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }
    try:
        folder.write_status(outcome)
    except OSError:
        pass  # the driver still gets the outcome from the return value
    return outcome
