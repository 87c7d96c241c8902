"""One process at a time trains a run folder: train.py and the experiment runner refuse a folder another live
process owns, change nothing in it, and name the owner; a dead owner's lock is taken over."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reengage.experiment.__main__ import main as experiment_main
from reengage.experiment.config import resolve_config
from reengage.experiment.results_folder import run_folder_of
from reengage.experiment.run_folder import LOCK_FILE, own_run_folder
from reengage.experiment.spec import expand_experiment

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "experiments" / "smoke.yaml"
SMALL = [
    "--set",
    "net_arch=[16,16]",
    "--set",
    "batch_size=32",
    "--set",
    "learning_starts=100",
    "--set",
    "eval_episodes=3",
    "--set",
    "eval_freq=100",
    "--set",
    "buffer_size=2000",
    "--no-progress",
]
# holds the lock of the folder argv[1] until killed; says so on stdout once it holds it
HOLDER = (
    "import sys, time\n"
    "from reengage.experiment.run_folder import own_run_folder\n"
    "with own_run_folder(sys.argv[1]):\n"
    "    print('holding', flush=True)\n"
    "    time.sleep(600)\n"
)


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=600,
    )


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every file of the folder: its content's hash and its modification time."""
    return {
        str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _started_run(folder: Path) -> None:
    """A folder that looks like a started run (a valid config.yaml and some output), without training one."""
    folder.mkdir(parents=True)
    config = resolve_config("reengage/ContinuousSeek5-v0", "ddpg", 0.0, 200, [])
    (folder / "config.yaml").write_text(yaml.safe_dump({**config, "seed": 0}, sort_keys=True))
    (folder / "evaluations.csv").write_text("step,eval/mean_return\n100,-5.0\n")
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "state.json").write_text("{}")


def test_a_folder_another_process_trains_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    logdir = tmp_path / "run"
    _started_run(logdir)
    with own_run_folder(logdir):
        before = _snapshot(logdir)
        for mode in (
            ["--resume", "--no-progress"],
            ["--restart", "--timesteps", "200", *SMALL],
            ["--timesteps", "200", *SMALL],
        ):
            result = _train("--logdir", str(logdir), *mode)
            assert result.returncode == 2, (mode, result.stderr[-2000:])
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result.stderr, (mode, result.stderr)
            assert str(logdir) in lines[0] and f"process {os.getpid()}" in lines[0], lines[0]
            assert f"kill {os.getpid()}" in lines[0] and "wait" in lines[0], lines[0]
            assert _snapshot(logdir) == before, mode


def test_a_dead_owners_lock_is_taken_over(tmp_path: Path) -> None:
    logdir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(logdir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        refused = _train("--logdir", str(logdir), "--timesteps", "200", *SMALL)
        assert refused.returncode == 2 and f"process {holder.pid}" in refused.stderr, refused.stderr[-2000:]
        assert not (logdir / "config.yaml").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the flock with the process
        holder.wait()
    assert (logdir / LOCK_FILE).exists()  # the dead owner's file is still there, and does not stand in the way
    result = _train("--logdir", str(logdir), "--timesteps", "200", *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (logdir / "model.zip").exists()
    assert len((logdir / "evaluations.csv").read_text().splitlines()) == 1 + 2


def test_a_grid_leaves_a_run_another_process_trains_to_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    raw = yaml.safe_load(SMOKE.read_text())
    raw.pop("report")
    raw["seeds"] = [0, 1]
    raw["timesteps"] = 200
    raw["variants"] = raw["variants"][:1]
    experiment_file = tmp_path / "lock.yaml"
    experiment_file.write_text(yaml.safe_dump(raw))
    owned_run, free_run = expand_experiment(raw).runs
    results = tmp_path / "results"
    owned = run_folder_of(results, owned_run.run_id).path
    with own_run_folder(owned):
        code = experiment_main(["run", str(experiment_file), "--results", str(results), "--workers", "1"])
        assert sorted(path.name for path in owned.iterdir()) == [LOCK_FILE]  # not trained, no status written
    err = capsys.readouterr().err
    assert code == 75, err
    assert f"SKIPPED {owned_run.run_id}" in err and f"process {os.getpid()}" in err
    assert "1 trained, 0 already done, 0 failed, 1 owned by another process (not trained) of 2" in err
    assert f"owned by process {os.getpid()}: {owned_run.run_id}" in err
    assert (run_folder_of(results, free_run.run_id).model_file).exists()


def test_a_worker_that_gets_a_run_another_runner_finished_leaves_it_alone(tmp_path: Path) -> None:
    # a second runner finished the run after this runner queued it: the worker neither trains nor rewrites it
    from reengage.experiment.execute import execute_run

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "status.json").write_text('{"status": "done", "timesteps": 200}')
    (folder / "evaluations.csv").write_text("step,eval/mean_return\n200,-5.0\n")
    before = _snapshot(folder)
    job = {"run_dir": str(folder), "config": {"timesteps": 200}, "seed": 0, "identity": {"run_id": "r"}}
    assert execute_run(job) == {"status": "done", "timesteps": 200, "already": True, "run_id": "r"}
    before[LOCK_FILE] = _snapshot(folder)[LOCK_FILE]  # the worker's lock file is the one thing it adds
    assert _snapshot(folder) == before
