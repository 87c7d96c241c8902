"""Drive an experiment's runs through a backend: skip finished runs, resume interrupted ones, report progress.

The results folder of an experiment (:mod:`reengage.experiment.results_folder`) holds the manifest, written
here, and one run folder per run: ``runs/<env>/<variant>/[<grid point>/]s<seed>_<config hash>/``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .backends import Backend
from .results_folder import run_folder_of, write_manifest
from .run_folder import BUSY, DONE
from .spec import Experiment


@dataclass
class GridSummary:
    total: int
    skipped: list[str] = field(default_factory=list)  # finished before this launch
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # run_id -> error
    # run_id -> pid of the process that owns its folder (another runner, or train.py): not trained here
    busy: dict[str, int | None] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """130 interrupted, 1 some run failed, 75 (EX_TEMPFAIL: run the command again later) some run was
        being trained by another process, else 0. A busy run is not a failure: its owner is training it, and
        a later launch finds it finished; but the grid is not complete, so the code is not 0 either."""
        return 130 if self.interrupted else 1 if self.failed else BUSY_EXIT_CODE if self.busy else 0


BUSY_EXIT_CODE = 75


def manifest_of(experiment: Experiment) -> dict[str, Any]:
    """The experiment's manifest: its file, settings and every run's identity (what the report reads)."""
    return {
        "name": experiment.name,
        "file": str(experiment.path) if experiment.path else None,
        "description": experiment.description,
        "baseline": experiment.baseline,
        "success_threshold": experiment.success_threshold,
        "metric": experiment.metric,
        "variants": experiment.variants,
        "task_keys": experiment.task_keys,
        "runs": [{**run.identity(), "timesteps": run.config["timesteps"]} for run in experiment.runs],
    }


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Progress:
    """Counts and an estimate of the time left, from the steps per second of runs finished in this launch."""

    def __init__(self, name: str, total: int, capacity: int, stream: TextIO, every: float) -> None:
        self.name, self.total, self.capacity, self.stream, self.every = name, total, capacity, stream, every
        self.started = time.monotonic()
        self.last_print = float("-inf")
        self.seconds_per_step: list[float] = []

    def record(self, outcome: dict[str, Any], wall_seconds: float) -> None:
        # the driver's wall time (process start and imports included), from fresh runs only
        if outcome.get("status") == DONE and not outcome.get("resumed") and outcome.get("timesteps"):
            self.seconds_per_step.append(wall_seconds / outcome["timesteps"])

    def eta(self, waiting_steps: int, running: dict[str, tuple[float, int]]) -> str:
        if not self.seconds_per_step:
            return "ETA after the first run finishes"
        rate = sum(self.seconds_per_step) / len(self.seconds_per_step)
        now = time.monotonic()
        running_left = sum(max(0.0, steps * rate - (now - start)) for start, steps in running.values())
        return f"ETA {_duration((running_left + waiting_steps * rate) / self.capacity)}"

    def show(
        self,
        summary: GridSummary,
        running: dict[str, tuple[float, int]],
        waiting_steps: int,
        waiting: int,
        force: bool = False,
    ) -> None:
        now = time.monotonic()
        if not force and now - self.last_print < self.every:
            return
        self.last_print = now
        finished = len(summary.done) + len(summary.skipped)
        busy = f"{len(summary.busy)} owned by another process, " if summary.busy else ""
        line = (
            f"[{self.name}] {finished}/{self.total} done ({len(summary.skipped)} already), {len(running)} running, "
            f"{len(summary.failed)} failed, {busy}{waiting} waiting | {_duration(now - self.started)} elapsed | "
            f"{self.eta(waiting_steps, running)}"
        )
        print(line, file=self.stream, flush=True)


def run_grid(
    experiment: Experiment,
    results_dir: str | Path,
    backend: Backend,
    device: str = "cpu",
    threads: int = 1,
    stream: TextIO | None = None,
    progress_every: float = 30.0,
) -> GridSummary:
    """Execute every unfinished run of ``experiment``; Ctrl-C stops all of them (checkpoints are kept).

    Progress lines go to ``stream``, by default the ``sys.stderr`` of the moment of the call (not of the import:
    a caller that redirects stderr gets them).
    """
    stream = sys.stderr if stream is None else stream
    results_dir = Path(results_dir)
    write_manifest(results_dir, manifest_of(experiment))
    summary = GridSummary(total=len(experiment.runs))
    queue: list[dict[str, Any]] = []
    for run in experiment.runs:
        folder = run_folder_of(results_dir, run.run_id)
        if folder.is_finished():
            summary.skipped.append(run.run_id)
            continue
        queue.append(
            {
                # absolute: a Ray worker's working directory is not the driver's
                "run_dir": str(folder.path.resolve()),
                "config": run.config,
                "seed": run.seed,
                "identity": run.identity(),
                "device": device,
                "threads": threads,
            }
        )
    progress = Progress(experiment.name, summary.total, backend.capacity, stream, progress_every)
    running: dict[str, tuple[float, int]] = {}  # run_id -> (start time, timesteps)
    waiting_steps = sum(job["config"]["timesteps"] for job in queue)

    def dispatch() -> None:
        nonlocal waiting_steps
        while queue and backend.in_flight() < backend.capacity:
            job = queue.pop(0)
            waiting_steps -= job["config"]["timesteps"]
            backend.submit(job)
            running[job["identity"]["run_id"]] = (time.monotonic(), job["config"]["timesteps"])

    try:
        dispatch()
        while queue or running:
            outcomes = backend.wait(timeout=1.0)
            for outcome in outcomes:
                run_id = outcome["run_id"]
                started, _ = running.pop(run_id, (time.monotonic(), 0))
                progress.record(outcome, time.monotonic() - started)
                if outcome.get("status") == DONE:
                    # finished by another runner between this launch and the worker taking the folder
                    (summary.skipped if outcome.get("already") else summary.done).append(run_id)
                elif outcome.get("status") == BUSY:
                    summary.busy[run_id] = outcome.get("owner_pid")
                    print(f"[{experiment.name}] SKIPPED {run_id}: {outcome.get('error')}", file=stream, flush=True)
                else:
                    summary.failed[run_id] = str(outcome.get("error", "unknown error"))
                    print(f"[{experiment.name}] FAILED {run_id}: {summary.failed[run_id]}", file=stream, flush=True)
            dispatch()  # before the progress line, so that it counts the runs that replaced the finished ones
            progress.show(summary, running, waiting_steps, len(queue), force=bool(outcomes))
    except KeyboardInterrupt:
        summary.interrupted = True
        print(
            f"[{experiment.name}] interrupted: {len(running)} running run(s) save a checkpoint and stop "
            "(Ctrl-C again to kill them at once)",
            file=stream,
            flush=True,
        )
        try:
            backend.stop()
            how = "stopped"
        except KeyboardInterrupt:
            backend.kill()
            how = "killed"
        print(
            f"[{experiment.name}] {how} {len(running)} running run(s); their newest complete checkpoints are "
            "kept. Run the same command again to resume.",
            file=stream,
            flush=True,
        )
    finally:
        backend.close()
    return summary
