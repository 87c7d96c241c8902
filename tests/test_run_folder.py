"""Run folders never get stuck and never lose work: resume from the saved settings, extend but never
shorten a finished run, restart a run that never reached a checkpoint, fall back from a corrupt
checkpoint, and write checkpoints atomically. Each case checks the files, not only the exit code."""

import hashlib
import json
import shutil
from pathlib import Path

import gymnasium as gym
import pytest
import torch

import train
from reengage.experiment.build import agent_class
from reengage.experiment.checkpoint import (
    MANIFEST_FILE,
    checkpoint_candidates,
    previous_checkpoint,
    staging_checkpoint,
)
from reengage.experiment.config import resolve_config
from reengage.experiment.runner import train_run

TINY = [
    "net_arch=[16,16]",
    "batch_size=32",
    "learning_starts=50",
    "eval_episodes=3",
    "buffer_size=2000",
    "eval_freq=100",
    "checkpoint_every=100",
]
SETS = [part for assignment in TINY for part in ("--set", assignment)]


def _config(timesteps):
    return resolve_config("reengage/ContinuousSeek5-v0", "ddpg", 0.2, timesteps, TINY)


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _parameters(run_dir: Path, config) -> dict[str, torch.Tensor]:
    env = gym.make(config["env_id"], **config["env_kwargs"])
    return agent_class(config).load(run_dir / "model.zip", env=env).policy.state_dict()


def _same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 250-step run."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    train_run(_config(250), 0, run_dir, progress=False, verbose=False)
    return run_dir


def _cut_run(tmp_path, steps=150):
    """A 250-step run that died at ``steps`` (after its step-100 checkpoint), as a kill leaves it."""
    run_dir = tmp_path / "cut"
    train_run(_config(steps), 0, run_dir, progress=False, verbose=False)
    for name in ("model.zip", "segments.json"):
        (run_dir / name).unlink()
    config_file = run_dir / "config.yaml"
    config_file.write_text(config_file.read_text().replace(f"timesteps: {steps}", "timesteps: 250"))
    return run_dir


def test_resume_with_only_logdir_continues_with_the_saved_settings(tmp_path, capsys, reference):
    run_dir = _cut_run(tmp_path)
    assert train.main(["--logdir", str(run_dir), "--resume", "--no-progress"]) == 0
    assert "resuming" in capsys.readouterr().out
    config = _config(250)
    assert _same(_parameters(run_dir, config), _parameters(reference, config))
    assert (run_dir / "evaluations.csv").read_text() == (reference / "evaluations.csv").read_text()
    assert (run_dir / "episodes.csv").read_text() == (reference / "episodes.csv").read_text()


def test_resume_refuses_flags_that_change_the_run_listing_the_keys(tmp_path, capsys):
    run_dir = _cut_run(tmp_path)
    before = _digests(run_dir)
    code = train.main(
        ["--logdir", str(run_dir), "--resume", "--no-progress", "--algo", "td3", "--set", "learning_rate=0.5"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "algo: 'ddpg' -> 'td3'" in err and "learning_rate: 0.0015 -> 0.5" in err, err
    code = train.main(["--logdir", str(run_dir), "--resume", "--no-progress", "--seed", "7"])
    assert code == 2 and "saved seed 0" in capsys.readouterr().err
    assert _digests(run_dir) == before


def test_a_finished_run_is_extended_never_shortened(tmp_path, capsys, reference):
    run_dir = tmp_path / "finished"
    shutil.copytree(reference, run_dir)
    before = _digests(run_dir)
    code = train.main(["--logdir", str(run_dir), "--resume", "--timesteps", "150", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "--timesteps 150 is below the 250 steps" in err and "never shortened" in err
    assert train.main(["--logdir", str(run_dir), "--resume", "--no-progress"]) == 0  # same length: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    code = train.main(["--logdir", str(run_dir), "--no-progress", "--timesteps", "250"])  # without --resume
    assert code == 2 and "--resume --timesteps N" in capsys.readouterr().err
    assert _digests(run_dir) == before

    # extending gives the run that was 350 steps long from the start
    assert train.main(["--logdir", str(run_dir), "--resume", "--timesteps", "350", "--no-progress"]) == 0
    straight = tmp_path / "straight"
    train_run(_config(350), 0, straight, progress=False, verbose=False)
    assert _same(_parameters(run_dir, _config(350)), _parameters(straight, _config(350)))
    assert (run_dir / "evaluations.csv").read_text() == (straight / "evaluations.csv").read_text()


def test_a_run_without_checkpoint_names_restart_which_starts_it_over(tmp_path, capsys, reference):
    run_dir = tmp_path / "early"
    train_run(_config(60), 0, run_dir, progress=False, verbose=False)  # dies before its first checkpoint:
    for name in ("model.zip", "segments.json"):
        (run_dir / name).unlink()
    (run_dir / "keep.txt").write_text("a file of the user's")
    for extra in ([], ["--resume"]):
        code = train.main(["--logdir", str(run_dir), "--timesteps", "250", "--no-progress", *extra])
        err = capsys.readouterr().err
        assert code == 2 and "never reached a checkpoint" in err and "--restart" in err, err
    assert (
        train.main(
            ["--logdir", str(run_dir), "--timesteps", "250", "--restart", "--no-progress", "--alpha", "0.2", *SETS]
        )
        == 0
    )
    assert _same(_parameters(run_dir, _config(250)), _parameters(reference, _config(250)))
    assert (run_dir / "evaluations.csv").read_text() == (reference / "evaluations.csv").read_text()
    assert (run_dir / "keep.txt").read_text() == "a file of the user's"
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # the old run's log went with --restart


@pytest.mark.parametrize("damaged", ["state.pkl", "replay_buffer.pkl", "model.zip"])
def test_a_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, reference, damaged):
    run_dir = _cut_run(tmp_path, steps=230)  # checkpoints at 100 (checkpoint.prev) and 200 (checkpoint)
    newest = run_dir / "checkpoint" / damaged
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    assert train.main(["--logdir", str(run_dir), "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming" in out and "from step 100 (checkpoint.prev)" in out, out
    assert str(newest) in out, out  # the warning names the damaged file
    config = _config(250)
    assert _same(_parameters(run_dir, config), _parameters(reference, config))


def test_every_checkpoint_unreadable_is_refused_naming_the_files(tmp_path, capsys):
    run_dir = _cut_run(tmp_path, steps=230)
    for folder in ("checkpoint", "checkpoint.prev"):
        path = run_dir / folder / "state.pkl"
        path.write_bytes(path.read_bytes()[:100])
    before = _digests(run_dir)
    code = train.main(["--logdir", str(run_dir), "--resume", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "no readable checkpoint" in err and "checkpoint/state.pkl" in err and "checkpoint.prev" in err, err
    assert _digests(run_dir) == before


def test_a_corrupt_checkpoint_with_intact_sizes_is_caught_by_its_checksum(tmp_path, capsys, reference):
    run_dir = _cut_run(tmp_path, steps=230)
    path = run_dir / "checkpoint" / "replay_buffer.pkl"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert train.main(["--logdir", str(run_dir), "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "checksum" in out and "checkpoint.prev" in out
    assert _same(_parameters(run_dir, _config(250)), _parameters(reference, _config(250)))


def test_a_kill_between_the_renames_keeps_the_newest_complete_checkpoint(tmp_path, reference):
    run_dir = _cut_run(tmp_path, steps=230)
    folder = run_dir / "checkpoint"
    # the state after `checkpoint -> checkpoint.prev` and before `checkpoint.tmp -> checkpoint`
    shutil.rmtree(previous_checkpoint(folder))
    folder.rename(staging_checkpoint(folder))
    shutil.copytree(staging_checkpoint(folder), previous_checkpoint(folder))
    manifest = json.loads((previous_checkpoint(folder) / MANIFEST_FILE).read_text())
    (previous_checkpoint(folder) / MANIFEST_FILE).write_text(json.dumps({**manifest, "step": 100}))
    assert [(path.name, step) for path, step in checkpoint_candidates(folder)] == [
        ("checkpoint.tmp", 200),
        ("checkpoint.prev", 100),
    ]
    train_run(_config(250), 0, run_dir, progress=False, resume=True, verbose=False)
    assert json.loads((run_dir / "segments.json").read_text())[-1]["start"] == 200
    assert _same(_parameters(run_dir, _config(250)), _parameters(reference, _config(250)))


def test_resume_without_logdir_finds_the_default_folder_of_the_flags(tmp_path, monkeypatch, capsys, reference):
    monkeypatch.chdir(tmp_path)
    run_dir = _cut_run(tmp_path)
    default = tmp_path / "runs" / "reengage_ContinuousSeek5-v0" / "ddpg_a0.2_s0"
    default.parent.mkdir(parents=True)
    run_dir.rename(default)
    assert train.main(["--resume", "--alpha", "0.2", "--no-progress"]) == 0
    assert "tensorboard --logdir runs/reengage_ContinuousSeek5-v0/ddpg_a0.2_s0" in capsys.readouterr().out
    assert _same(_parameters(default, _config(250)), _parameters(reference, _config(250)))
