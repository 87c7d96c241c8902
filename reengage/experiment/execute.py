"""Execute one run of an experiment inside a worker (a local process or a Ray task).

The run folder is the run's whole state, so any backend can pick a run up where another left it:

* ``run.json``: the run's identity (environment, variant, grid point, seed, configuration hash);
* what :func:`reengage.experiment.runner.train_run` writes (``config.yaml``, ``evaluations.csv``,
  ``checkpoint/``, ``model.zip``, TensorBoard events);
* ``status.json``: written last, ``{"status": "done", ...}``, ``{"status": "failed", "error": ...}`` or
  ``{"status": "interrupted", "step": ...}`` (SIGTERM/SIGINT: stopped after a checkpoint, resumed next time).

A folder with ``config.yaml`` and a checkpoint is an interrupted run and is resumed
(``train_run(..., resume=True)``); one that died before its first checkpoint starts again.
"""

from __future__ import annotations

import json
import shutil
import time
import traceback
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
STATUS_FILE = "status.json"
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"

# a finished run's compact record: what the report reads, kilobytes per run (never the model, the
# checkpoints, the replay buffer or the TensorBoard events)
RECORD_FILES = (RUN_FILE, "config.yaml", "evaluations.csv", "episodes.csv", "segments.json", STATUS_FILE)


def read_status(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def is_finished(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run: ``status.json`` says done and ``evaluations.csv`` is there.

    The model and checkpoints are not required: a finished run's compact record (the files that
    :data:`RECORD_FILES` names, committed to a repository) counts as finished, so a fresh clone of the
    results skips it instead of training it again.
    """
    from .runner import EVALUATIONS_FILE

    status = read_status(run_dir)
    return bool(status and status.get("status") == DONE and (Path(run_dir) / EVALUATIONS_FILE).exists())


def record_paths(results_dir: Path) -> list[Path]:
    """The files to keep of a results folder: its manifest and each finished run's :data:`RECORD_FILES`.

    Unfinished, failed and interrupted runs are left out (their state is a checkpoint, which is never
    committed); so are the model, checkpoints and TensorBoard events of finished runs.
    """
    from .grid import MANIFEST_FILE

    results_dir = Path(results_dir)
    paths = [path for path in [results_dir / MANIFEST_FILE] if path.exists()]
    for run_file in sorted(results_dir.rglob(RUN_FILE)):
        run_dir = run_file.parent
        if is_finished(run_dir):
            paths.extend(run_dir / name for name in RECORD_FILES if (run_dir / name).exists())
    return paths


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    # write then rename: a reader (the driver, the report) never sees half a file
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(json.dumps(payload, indent=1, default=repr))
    staging.replace(path)


def _prepare(run_dir: Path) -> bool:
    """Decide between resuming and starting afresh; returns ``resume``."""
    from .checkpoint import find_checkpoint
    from .runner import CHECKPOINT_DIR, CONFIG_FILE

    if not (run_dir / CONFIG_FILE).exists():
        return False
    if find_checkpoint(run_dir / CHECKPOINT_DIR) is not None:
        return True
    # started but killed before its first checkpoint: nothing to resume, so start it again
    for path in run_dir.iterdir():
        if path.name == RUN_FILE:
            continue
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    return False


def execute_run(job: dict[str, Any]) -> dict[str, Any]:
    """Train one run (or resume it) and record the outcome in ``status.json``; never raises.

    ``job`` holds ``run_dir``, ``config``, ``seed``, ``identity``, ``device`` and ``threads``.
    Returns the status written, with ``run_id`` added.
    """
    run_dir = Path(job["run_dir"])
    outcome: dict[str, Any]
    try:
        import torch

        from .runner import RunInterrupted, train_run

        torch.set_num_threads(int(job.get("threads", 1)))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / STATUS_FILE).unlink(missing_ok=True)
        resume = _prepare(run_dir)
        _write_json(run_dir / RUN_FILE, job["identity"])
        start = time.perf_counter()
        # verbose=False: a grid's progress lines come from the driver, not from every worker's evaluations
        train_run(job["config"], int(job["seed"]), run_dir, job.get("device", "cpu"), resume=resume, progress=False,
                  verbose=False)
        outcome = {
            "status": DONE,
            "seconds": time.perf_counter() - start,
            "timesteps": job["config"]["timesteps"],
            "resumed": resume,
        }
    except RunInterrupted as stop:
        outcome = {"status": INTERRUPTED, "step": stop.step, "signal": stop.signal_number}
    except Exception as error:  # noqa: BLE001  (a failed run is reported, and the grid goes on)
        outcome = {
            "status": FAILED,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }
    try:
        _write_json(run_dir / STATUS_FILE, outcome)
    except OSError:
        pass  # the driver still gets the outcome from the return value
    return {**outcome, "run_id": job["identity"]["run_id"]}
