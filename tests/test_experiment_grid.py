"""The experiment runner end to end: the smoke grid on local processes and on Ray, skip, resume, failure, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from reengage.experiment.__main__ import main as experiment_main
from reengage.experiment.backends import LocalBackend
from reengage.experiment.grid import run_grid
from reengage.experiment.results_folder import MANIFEST_FILE
from reengage.experiment.spec import expand_experiment, load_experiment

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "experiments" / "smoke.yaml"


def model_times(results: Path) -> dict[str, float]:
    return {
        str(path.parent.relative_to(results)): path.stat().st_mtime_ns
        for path in results.rglob("model.zip")
        if not path.parent.name.startswith("checkpoint")
    }  # final models only, not checkpoint copies


def statuses(results: Path) -> dict[str, dict]:
    return {
        str(path.parent.relative_to(results / "runs")): json.loads(path.read_text())
        for path in (results / "runs").rglob("status.json")
    }


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/experiments/smoke.yaml run once through the command line (local backend, 2 workers)."""
    results = tmp_path_factory.mktemp("smoke") / "results"
    code = experiment_main(["run", str(SMOKE), "--results", str(results), "--workers", "2"])
    assert code == 0
    return results


def test_smoke_grid_runs_end_to_end_and_reports(smoke_results: Path, tmp_path: Path) -> None:
    experiment = load_experiment(SMOKE)
    found = statuses(smoke_results)
    assert sorted(found) == sorted(run.run_id for run in experiment.runs)
    assert all(status["status"] == "done" and not status["resumed"] for status in found.values())
    for run in experiment.runs:
        lines = (smoke_results / "runs" / run.run_id / "evaluations.csv").read_text().splitlines()
        assert lines[0].startswith("step,") and len(lines) == 1 + 3  # evaluations at 100, 200, 300 steps
        saved = yaml.safe_load((smoke_results / "runs" / run.run_id / "config.yaml").read_text())
        assert saved == {**run.config, "seed": run.seed}  # the run trained exactly the resolved configuration
    assert len(json.loads((smoke_results / MANIFEST_FILE).read_text())["runs"]) == 4
    assert experiment_main(["report", str(smoke_results), "--out", str(tmp_path), "--reps", "200"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "| reengage/ContinuousSeek5-v0 | ReenGAGE | 2 |" in report and (tmp_path / "curves.png").exists()


def test_relaunch_skips_finished_runs(smoke_results: Path, capsys: pytest.CaptureFixture) -> None:
    before = model_times(smoke_results)
    assert experiment_main(["run", str(SMOKE), "--results", str(smoke_results), "--workers", "2"]) == 0
    assert "0 trained, 4 already done" in capsys.readouterr().err
    assert model_times(smoke_results) == before


def test_killed_run_resumes_from_its_checkpoint_and_finished_runs_are_kept(smoke_results: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    shutil.copytree(smoke_results, results)
    victim = load_experiment(SMOKE).runs[1]
    victim_dir = results / "runs" / victim.run_id
    # what a kill leaves: the last checkpoint (step 200 of 300), no final model, no status
    (victim_dir / "model.zip").unlink()
    (victim_dir / "status.json").unlink()
    before = model_times(results)
    summary = run_grid(load_experiment(SMOKE), results, LocalBackend(2), stream=sys.stderr)
    assert summary.exit_code == 0 and summary.done == [victim.run_id] and len(summary.skipped) == 3
    assert statuses(results)[victim.run_id]["resumed"] is True
    segments = json.loads((victim_dir / "segments.json").read_text())
    assert segments[-1] == {"start": 200, "resumed": True, "end": 300}
    after = model_times(results)
    untouched = lambda times: {k: v for k, v in times.items() if victim.run_id not in k}  # noqa: E731
    assert untouched(after) == untouched(before) and len(untouched(before)) == 3


class _RecordingBackend:
    """Records the jobs the driver submits and reports each done at once: no training."""

    name, capacity = "recording", 4

    def __init__(self) -> None:
        self.submitted: list[dict] = []
        self.pending: list[dict] = []

    def submit(self, job: dict) -> None:
        self.submitted.append(job)
        self.pending.append(job)

    def wait(self, timeout: float) -> list[dict]:
        finished, self.pending = self.pending, []
        return [
            {"run_id": job["identity"]["run_id"], "status": "done", "timesteps": job["config"]["timesteps"]}
            for job in finished
        ]

    def in_flight(self) -> int:
        return len(self.pending)

    def stop(self) -> None:
        self.pending.clear()

    kill = stop

    def close(self) -> None:
        pass


def test_a_changed_setting_trains_new_runs_and_never_reuses_the_finished_ones(
    smoke_results: Path, tmp_path: Path
) -> None:
    # the same file with one setting changed: every run is new (another configuration hash), none of the
    # finished runs is skipped as if it were the same run, and they stay on disk untouched
    results = tmp_path / "results"
    shutil.copytree(smoke_results, results)
    before = model_times(results)
    raw = yaml.safe_load(SMOKE.read_text())
    raw["overrides"]["learning_rate"] = 5e-4
    changed = expand_experiment(raw, name_default="smoke")
    backend = _RecordingBackend()
    summary = run_grid(changed, results, backend, stream=sys.stderr)
    assert summary.skipped == [] and sorted(summary.done) == sorted(run.run_id for run in changed.runs)
    submitted = {job["identity"]["run_id"]: job["config"] for job in backend.submitted}
    old_ids = {run.run_id for run in load_experiment(SMOKE).runs}
    assert len(submitted) == 4 and not set(submitted) & old_ids
    assert all(config["learning_rate"] == 5e-4 for config in submitted.values())
    assert model_times(results) == before
    # the manifest now lists the new runs only, so the report would never mix in the old ones
    manifest = json.loads((results / MANIFEST_FILE).read_text())
    assert {run["run_id"] for run in manifest["runs"]} == set(submitted)


def test_a_run_folder_holding_other_settings_is_refused_not_resumed(smoke_results: Path, tmp_path: Path) -> None:
    # a folder whose config.yaml disagrees with the run's configuration (edited by hand, or copied over):
    # the worker refuses to continue it, names the setting, and leaves the folder's settings as they were
    from reengage.experiment.execute import execute_run

    run = load_experiment(SMOKE).runs[0]
    run_dir = tmp_path / "run"
    shutil.copytree(smoke_results / "runs" / run.run_id, run_dir)
    (run_dir / "model.zip").unlink()
    (run_dir / "status.json").unlink()  # an interrupted run: a checkpoint, no final model
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**saved, "learning_rate": 0.5}))
    outcome = execute_run({"run_dir": str(run_dir), "config": run.config, "seed": run.seed, "identity": run.identity()})
    assert outcome["status"] == "failed"
    assert "would not continue the same run" in outcome["error"] and "learning_rate: 0.5 -> 0.001" in outcome["error"]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["learning_rate"] == 0.5
    assert not (run_dir / "model.zip").exists()


def test_a_failing_run_is_reported_and_the_others_go_on(tmp_path: Path) -> None:
    raw = yaml.safe_load(SMOKE.read_text())
    raw["seeds"] = [0]
    raw.pop("report")
    raw["variants"] = [
        # passes config validation, fails when the environment is built (ContinuousSeek refuses horizon 0)
        {"name": "broken", "algo": "ddpg", "alpha": 0, "overrides": {"env_kwargs": {"horizon": 0}}},
        {"name": "fine", "algo": "ddpg", "alpha": 0},
    ]
    experiment = expand_experiment(raw)
    summary = run_grid(experiment, tmp_path, LocalBackend(1), stream=sys.stderr)  # one worker: the failure comes first
    assert summary.exit_code == 1
    ((failed_id, error),) = summary.failed.items()
    assert failed_id.startswith("ContinuousSeek5-v0/broken/") and "horizon" in error
    assert summary.done == [next(r.run_id for r in experiment.runs if r.variant == "fine")]
    assert "Traceback" in statuses(tmp_path)[failed_id]["traceback"]


def test_a_worker_killed_mid_run_is_reported_and_replaced(tmp_path: Path) -> None:
    # what the out-of-memory killer does to a worker: the run fails with the exit code, the grid goes on
    raw = yaml.safe_load(SMOKE.read_text())
    raw.update(seeds=[0], timesteps=100000)
    raw.pop("report")
    raw["variants"] = [
        {"name": "long", "algo": "ddpg", "alpha": 0},
        {"name": "broken", "algo": "ddpg", "alpha": 0, "overrides": {"env_kwargs": {"horizon": 0}}},
    ]
    long_run, broken_run = expand_experiment(raw).runs
    backend = LocalBackend(1)
    try:
        backend.submit(
            {"run_dir": str(tmp_path / "long"), "config": long_run.config, "seed": 0, "identity": long_run.identity()}
        )
        ((worker, _),) = backend._busy.values()
        deadline = time.monotonic() + 120
        while not (tmp_path / "long" / "config.yaml").exists():  # the run has started training
            assert time.monotonic() < deadline and not backend.wait(0.5)
        os.kill(worker.process.pid, signal.SIGKILL)
        outcomes = []
        while not outcomes:
            outcomes = backend.wait(5)
        assert outcomes[0]["status"] == "failed" and "exited with code -9" in outcomes[0]["error"]
        backend.submit(
            {
                "run_dir": str(tmp_path / "broken"),
                "config": broken_run.config,
                "seed": 0,
                "identity": broken_run.identity(),
            }
        )
        ((replacement, _),) = backend._busy.values()
        assert replacement.process.pid != worker.process.pid
        outcomes = []
        while not outcomes:
            outcomes = backend.wait(5)
        assert outcomes[0]["status"] == "failed" and "horizon" in outcomes[0]["error"]
    finally:
        backend.close()
    assert not replacement.process.is_alive()


def test_smoke_grid_on_a_local_ray_instance(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    results = tmp_path / "ray"
    assert experiment_main(["run", str(SMOKE), "--results", str(results), "--backend", "ray", "--workers", "2"]) == 0
    found = statuses(results)
    assert len(found) == 4 and all(status["status"] == "done" for status in found.values())


def _start_grid_until_a_checkpoint(tmp_path: Path, seeds: int) -> tuple[subprocess.Popen, Path, Path]:
    """A smoke grid of 1500-step runs (checkpoints every 200 steps) in its own process group, returned
    once some run has written a checkpoint: (process, experiment file, results folder)."""
    raw = yaml.safe_load(SMOKE.read_text())
    raw.update(timesteps=1500, seeds=seeds)
    raw["overrides"]["checkpoint_every"] = 200
    experiment_file = tmp_path / "interrupted.yaml"
    experiment_file.write_text(yaml.safe_dump(raw))
    results = tmp_path / "results"
    command = [
        sys.executable,
        "-m",
        "reengage.experiment",
        "run",
        str(experiment_file),
        "--results",
        str(results),
        "--workers",
        "2",
        "--progress-every",
        "5",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not list(results.rglob("checkpoint/state.pkl")):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    return process, experiment_file, results


@pytest.mark.slow
def test_ctrl_c_stops_the_grid_promptly_and_a_relaunch_resumes(tmp_path: Path) -> None:
    process, experiment_file, results = _start_grid_until_a_checkpoint(tmp_path, seeds=3)
    finished_before = set(model_times(results))
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
    start = time.monotonic()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert time.monotonic() - start < 30
    assert "interrupted" in err
    # no worker is left behind
    leftover = subprocess.run(["pgrep", "-f", str(experiment_file)], capture_output=True, text=True).stdout.split()
    assert not leftover
    code = experiment_main(["run", str(experiment_file), "--results", str(results), "--workers", "2"])
    assert code == 0
    found = statuses(results)
    assert len(found) == 6 and any(status["resumed"] for status in found.values())
    # runs that had finished before the kill were not trained again
    for run_dir in finished_before:
        assert not found[run_dir.removeprefix("runs/")]["resumed"]


def test_a_second_ctrl_c_kills_the_grid_at_once_and_each_run_keeps_a_checkpoint(tmp_path: Path) -> None:
    from reengage.experiment.checkpoint import find_checkpoint

    process, experiment_file, results = _start_grid_until_a_checkpoint(tmp_path, seeds=1)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.3)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    start = time.monotonic()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert time.monotonic() - start < 20
    assert "Traceback" not in err + out and "KeyboardInterrupt" not in err + out, err
    # the workers leave Ctrl-C to the driver: they neither announce it nor treat it as their own stop request
    assert "received" not in out, out
    assert "interrupted" in err and "Run the same command again to resume" in err
    assert not subprocess.run(["pgrep", "-f", str(experiment_file)], capture_output=True, text=True).stdout.split()
    started = [path.parent for path in results.rglob("config.yaml")]
    assert started
    for run_dir in started:
        # a run stopped by its SIGTERM says so; one killed mid-write still has its newest complete checkpoint
        status = json.loads((run_dir / "status.json").read_text()) if (run_dir / "status.json").exists() else None
        assert status is None or status["status"] == "interrupted", status
        if status is not None or (run_dir / "checkpoint").exists():
            assert find_checkpoint(run_dir / "checkpoint") is not None


class _OneAtATimeBackend(_RecordingBackend):
    """Finishes only its oldest job at each wait, two at a time: just the driver's bookkeeping."""

    name, capacity = "fake", 2

    def wait(self, timeout: float) -> list[dict]:
        job = self.pending.pop(0)
        return [{"run_id": job["identity"]["run_id"], "status": "done", "timesteps": job["config"]["timesteps"]}]


def test_progress_lines_count_the_runs_that_replaced_finished_ones(tmp_path: Path) -> None:
    import io

    from reengage.experiment.grid import run_grid
    from reengage.experiment.spec import load_experiment

    stream = io.StringIO()
    summary = run_grid(
        load_experiment(SMOKE), tmp_path / "results", _OneAtATimeBackend(), stream=stream, progress_every=3600
    )
    assert len(summary.done) == 4
    lines = [line for line in stream.getvalue().splitlines() if " running" in line]
    # 4 runs, 2 at a time: after the first and second finish, the next ones are already running
    assert [line.split(" done ")[0].split()[-1] for line in lines] == ["1/4", "2/4", "3/4", "4/4"]
    assert ["2 running" in line for line in lines] == [True, True, False, False]
    assert "1 running, 0 failed, 0 waiting" in lines[2] and "0 running, 0 failed, 0 waiting" in lines[3]


def test_committed_records_alone_reproduce_the_report_and_are_not_trained_again(
    smoke_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """What `records` lists (the compact record a repository keeps) is enough: a folder holding only those
    files reports the same numbers, and `run` skips its runs instead of training them again."""
    full_report, clone_report = tmp_path / "full", tmp_path / "clone_report"
    assert experiment_main(["report", str(smoke_results), "--out", str(full_report), "--reps", "200"]) == 0
    capsys.readouterr()
    assert experiment_main(["records", str(smoke_results)]) == 0
    listed = [Path(line) for line in capsys.readouterr().out.splitlines()]
    names = {path.name for path in listed}
    assert names == {
        "experiment.json",
        "run.json",
        "config.yaml",
        "evaluations.csv",
        "episodes.csv",
        "segments.json",
        "status.json",
    }
    assert not any(
        path.suffix in {".zip", ".pkl"} or "checkpoint" in path.parts or "events" in path.name for path in listed
    )
    clone = tmp_path / "clone"
    for path in listed:
        target = clone / path.relative_to(smoke_results)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    assert sum(path.stat().st_size for path in listed) < 200_000  # kilobytes, not megabytes
    assert experiment_main(["report", str(clone), "--out", str(clone_report), "--reps", "200"]) == 0
    assert (clone_report / "report.md").read_text().replace(str(clone), "X") == (
        full_report / "report.md"
    ).read_text().replace(str(smoke_results), "X")
    capsys.readouterr()
    assert experiment_main(["list", str(SMOKE), "--results", str(clone)]) == 0
    assert all(line.startswith("done") for line in capsys.readouterr().out.splitlines())
    assert experiment_main(["run", str(SMOKE), "--results", str(clone), "--workers", "2"]) == 0
    assert "0 trained, 4 already done" in capsys.readouterr().err
    assert not list(clone.rglob("model.zip"))


def test_records_of_a_folder_without_finished_runs_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert experiment_main(["records", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err
    assert experiment_main(["records", str(tmp_path)]) == 2
    assert "no finished run" in capsys.readouterr().err


def test_workers_stop_when_the_runner_is_killed_and_a_rerun_resumes_their_runs(tmp_path: Path) -> None:
    """SIGKILL of the runner leaves no worker training: each checkpoints and ends on its own, and the same
    command then resumes those runs (nothing is trained twice at once)."""
    process, experiment_file, results = _start_grid_until_a_checkpoint(tmp_path, seeds=2)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    # the runner's children that are workers (spawned processes), not multiprocessing's resource tracker
    workers = [pid for pid in workers if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")]
    assert workers
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    deadline = time.monotonic() + 60
    while any(
        Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2] for pid in workers
    ):
        assert time.monotonic() < deadline, "a worker outlived its runner"
        time.sleep(0.2)
    stopped = {run: status for run, status in statuses(results).items() if status["status"] == "interrupted"}
    assert stopped  # the runs in flight saved a checkpoint and said so
    assert experiment_main(["run", str(experiment_file), "--results", str(results), "--workers", "2"]) == 0
    found = statuses(results)
    assert all(status["status"] == "done" for status in found.values())
    assert all(found[run]["resumed"] for run in stopped)


def test_the_repository_keeps_records_and_ignores_the_heavy_files() -> None:
    """.gitignore lets each finished run's compact record into git and keeps its model, checkpoints, events
    and lock out (checked with git itself, on paths of the layout the runner writes)."""
    from reengage.experiment.run_folder import RECORD_FILES

    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    run = "results/some_experiment/runs/ContinuousSeek5-v0/DDPG+HER/s0_0123456789"
    kept = [
        "results/some_experiment/experiment.json",
        "results/some_experiment/trials.csv",
        "results/some_experiment/best.yaml",
        *(f"{run}/{name}" for name in RECORD_FILES),
    ]
    ignored = [
        "results/some_experiment/study.db",
        f"{run}/model.zip",
        f"{run}/checkpoint/state.pkl",
        f"{run}/checkpoint.prev/replay_buffer.pkl",
        f"{run}/events.out.tfevents.1.host.0.0",
        f"{run}/.lock",
        "results/some_experiment.log",
        "results/some_experiment/report/report.md",
        "runs/quickstart/model.zip",
    ]

    def is_ignored(path: str) -> bool:
        result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
        return result.returncode == 0

    assert [path for path in kept if is_ignored(path)] == []
    assert [path for path in ignored if not is_ignored(path)] == []
