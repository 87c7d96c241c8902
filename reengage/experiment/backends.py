"""Where runs execute: local worker processes (default) or Ray tasks.

Both backends take jobs (see :func:`reengage.experiment.execute.execute_run`) one at a time, report the
outcomes of the jobs that have finished, and can stop everything in flight. The grid driver
(:mod:`reengage.experiment.grid`) keeps at most ``capacity`` jobs in flight, so "running" means running.

Why Ray *tasks* and not Ray Tune: the driver already owns what Tune would add (grid expansion,
run identity by configuration hash, skip/resume from the run folder, the report); one run is one
function call, so a remote function is the whole integration. Tune would bring a second notion of a
trial, its own result folders and its own resume rules, which could disagree with the run folder
about whether a run is finished.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .execute import execute_run
from .run_folder import FAILED, INTERRUPTED, RunFolder

RAY_INSTALL_HINT = 'the ray backend needs Ray: pip install -e ".[ray]" (or pip install "ray>=2.9")'


class BackendUnavailable(RuntimeError):
    """The backend cannot start (Ray not installed, cluster unreachable); the message says what to do."""


class Backend(Protocol):
    capacity: int
    name: str

    def submit(self, job: dict[str, Any]) -> None: ...

    def wait(self, timeout: float) -> list[dict[str, Any]]: ...

    def in_flight(self) -> int: ...

    def stop(self) -> None: ...

    def kill(self) -> None: ...

    def close(self) -> None: ...


# how often a worker checks that its driver is alive: the delay before an orphaned run starts to stop
DRIVER_CHECK_SECONDS = 1.0


def _stop_when_the_driver_dies(driver_pid: int) -> None:
    """Send this worker SIGTERM once its driver is gone, however the driver died (SIGKILL included).

    SIGTERM is the driver's own stop request: a training run saves a checkpoint and ends, an idle worker
    ends, so no worker trains on unseen after its driver (a re-run would otherwise meet the orphan). The
    parent pid changes when the parent dies (the worker is re-parented), which works on every POSIX system,
    unlike Linux's parent-death signal.
    """

    def watch() -> None:
        while os.getppid() == driver_pid:
            time.sleep(DRIVER_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="driver-watch", daemon=True).start()


def _worker_loop(connection: Any, driver_pid: int | None = None) -> None:
    """A long-lived worker: runs the jobs the driver sends, one at a time, until it receives None."""
    # Ctrl-C reaches every process of the terminal's group; the driver alone decides what stops
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if driver_pid is not None:
        _stop_when_the_driver_dies(driver_pid)
    while True:
        try:
            job = connection.recv()
        except (EOFError, OSError):
            return  # the driver is gone
        if job is None:
            return
        outcome = execute_run(job)
        try:
            connection.send(outcome)
        except (BrokenPipeError, OSError):
            return  # the driver died during the run: the outcome is in the run's status.json
        if outcome["status"] == INTERRUPTED:
            return  # the driver's SIGTERM stopped the run: the worker ends with it, not waits for the next job


@dataclass
class _Worker:
    process: Any
    connection: Any


class LocalBackend:
    """Up to ``workers`` long-lived worker processes (spawned, so no torch state is forked).

    A worker imports torch and stable-baselines3 once and then trains run after run, as a Ray worker
    does; on a loaded 2-core machine those imports took longer than a small run. A run that kills its
    worker (out of memory, a crash in native code) is reported failed and the worker is replaced.
    Stopping the grid terminates every worker.
    """

    name = "local"

    def __init__(self, workers: int) -> None:
        self.capacity = workers
        self._context = multiprocessing.get_context("spawn")
        self._idle: list[_Worker] = []
        self._busy: dict[str, tuple[_Worker, dict[str, Any]]] = {}

    def _start_worker(self) -> _Worker:
        driver_end, worker_end = self._context.Pipe()
        # not a daemon: a run may start processes of its own (vectorised environments); stop() ends it
        process = self._context.Process(
            target=_worker_loop, args=(worker_end, os.getpid()), name="reengage-experiment-worker"
        )
        process.start()
        worker_end.close()
        return _Worker(process, driver_end)

    def submit(self, job: dict[str, Any]) -> None:
        worker = self._idle.pop() if self._idle else self._start_worker()
        worker.connection.send(job)
        self._busy[job["identity"]["run_id"]] = (worker, job)

    def in_flight(self) -> int:
        return len(self._busy)

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        if not self._busy:
            return []
        handles = [h for worker, _ in self._busy.values() for h in (worker.connection, worker.process.sentinel)]
        multiprocessing.connection.wait(handles, timeout=timeout)
        outcomes = []
        for run_id, (worker, job) in list(self._busy.items()):
            outcome = None
            if worker.connection.poll():
                try:
                    outcome = worker.connection.recv()
                except (EOFError, OSError):
                    outcome = None
            if outcome is not None:
                del self._busy[run_id]
                self._idle.append(worker)
                outcomes.append(outcome)
            elif not worker.process.is_alive():
                worker.process.join()
                del self._busy[run_id]
                status = RunFolder(Path(job["run_dir"])).read_status()
                if status is None:
                    status = {
                        "status": FAILED,
                        "error": f"worker process exited with code {worker.process.exitcode} before finishing",
                    }
                outcomes.append({**status, "run_id": run_id})
        return outcomes

    def _workers(self) -> list[_Worker]:
        return [worker for worker, _ in self._busy.values()] + self._idle

    def stop(self) -> None:
        workers = self._workers()
        for worker in workers:
            worker.process.terminate()
        # train_run answers SIGTERM by checkpointing at its next step: give them 15 s together, then kill
        deadline = time.monotonic() + 15
        for worker in workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        self.kill()

    def kill(self) -> None:
        """End every worker now (SIGKILL): a run keeps its last complete checkpoint, never a partial one."""
        for worker in self._workers():
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self._busy.clear()
        self._idle.clear()

    def close(self) -> None:
        for worker in self._idle:  # idle workers leave their loop; stop() ends the rest
            try:
                worker.connection.send(None)
            except OSError:
                pass
        for worker in self._idle:
            worker.process.join(timeout=5)
        self.stop()


class RayBackend:
    """Each run is a Ray task with one CPU; ``address=None`` starts a local Ray instance.

    On a cluster, every node needs this package installed (the same commit) and the results folder
    must be on storage that every node and the driver share: the run folder is the run's state.
    """

    name = "ray"

    def __init__(self, workers: int | None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise BackendUnavailable(RAY_INSTALL_HINT) from None
        import logging

        self._ray = ray
        options: dict[str, Any] = {
            "ignore_reinit_error": True,
            "log_to_driver": False,
            "logging_level": logging.WARNING,
        }
        if address:
            options["address"] = address
        else:
            # Ray renices its workers (to 15 by default): on a shared machine they would then yield to every
            # other process, unlike the local backend's workers; keep the driver's priority instead
            options.update(
                num_cpus=workers or multiprocessing.cpu_count(),
                include_dashboard=False,
                _system_config={"worker_niceness": 0},
            )
        try:
            ray.init(**options)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise BackendUnavailable(f"cannot start Ray (address={address!r}): {error}") from None
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.capacity = max(1, min(workers, cluster_cpus) if workers else cluster_cpus)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(execute_run)
        self._refs: dict[Any, dict[str, Any]] = {}

    def submit(self, job: dict[str, Any]) -> None:
        self._refs[self._remote.remote(job)] = job

    def in_flight(self) -> int:
        return len(self._refs)

    def wait(self, timeout: float) -> list[dict[str, Any]]:
        if not self._refs:
            return []
        refs = list(self._refs)
        ready, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        outcomes = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                outcomes.append(self._ray.get(ref))
            except Exception as error:  # noqa: BLE001  (a dead worker or a cancelled task: report, go on)
                outcomes.append(
                    {
                        "status": FAILED,
                        "error": f"Ray task failed: {type(error).__name__}: {error}",
                        "run_id": job["identity"]["run_id"],
                    }
                )
        return outcomes

    def stop(self) -> None:
        for ref in self._refs:
            self._ray.cancel(ref, force=True)
        self._refs.clear()

    def kill(self) -> None:
        self.stop()  # a forced cancel already kills the task's worker

    def close(self) -> None:
        self.stop()
        self._ray.shutdown()


def make_backend(name: str, workers: int | None, address: str | None = None) -> Backend:
    if name == "local":
        return LocalBackend(workers or multiprocessing.cpu_count())
    if name == "ray":
        return RayBackend(workers, address)
    raise BackendUnavailable(f"unknown backend {name!r}; valid backends: local, ray")
