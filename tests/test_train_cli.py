"""train.py end to end: TensorBoard output, errors that list the valid choices, checkpoint and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from reengage.experiment.config import resolve_config
from reengage.experiment.tensorboard import read_scalars

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--set",
    "net_arch=[16,16]",
    "--set",
    "batch_size=32",
    "--set",
    "learning_starts=100",
    "--set",
    "eval_episodes=5",
    "--set",
    "buffer_size=5000",
    "--no-progress",
]


def _train(*args, check=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_smoke_run_writes_tensorboard_scalars_model_and_config(tmp_path):
    logdir = tmp_path / "run"
    _train(
        "--env",
        "reengage/ContinuousSeek5-v0",
        "--algo",
        "ddpg",
        "--alpha",
        "0.2",
        "--seed",
        "1",
        "--timesteps",
        "400",
        "--logdir",
        str(logdir),
        "--set",
        "eval_freq=200",
        *SMALL,
    )
    scalars = read_scalars(logdir)
    assert [step for step, _ in scalars["eval/success_ever"]] == [200, 400]
    assert all(0.0 <= value <= 1.0 for _, value in scalars["eval/success_ever"])
    for tag in (
        "eval/success_final",
        "eval/mean_return",
        "train/critic_loss",
        "train/actor_loss",
        "train/reengage_loss",
        "train/reengage_masked_fraction",
    ):
        assert tag in scalars, tag
    assert all(-10.0 <= value <= 0.0 for _, value in scalars["eval/mean_return"])
    saved = yaml.safe_load((logdir / "config.yaml").read_text())
    assert saved["reengage_alpha"] == 0.2 and saved["seed"] == 1 and saved["net_arch"] == [16, 16]
    assert (logdir / "model.zip").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--env", "reengage/NoSuchEnv-v0"], "valid envs: .*reengage/ContinuousSeek5-v0"),
        (["--algo", "ppo"], "valid algos: .*ddpg"),
        (["--set", "learning_rat=0.1"], "valid keys: .*learning_rate"),
        (["--set", "batch_size=big"], "batch_size"),
        (["--device", "tpu"], "valid devices: cpu, cuda, auto"),
    ],
)
def test_bad_input_is_refused_with_the_valid_choices(tmp_path, args, message):
    result = _train("--timesteps", "10", "--logdir", str(tmp_path / "bad"), *args, check=False)
    assert result.returncode == 2
    assert __import__("re").search(message, result.stderr), result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "env_kwargs=[1,2"], r"--set env_kwargs: cannot read '\[1,2' as a YAML value .*\[a, list\]"),
        (["--set", "env_kwargs={d: 5"], r"--set env_kwargs: cannot read '\{d: 5' as a YAML value"),
        (["--set", "learning_rate=\t1"], r"--set learning_rate: cannot read .* as a YAML value"),  # a tab
        (["--set", "learning_rate=!!python/object:os.system 1"], r"--set learning_rate: cannot read"),
        (["--set", "learning_rate="], r"--set learning_rate= has no value"),
        (
            ["--set", "env_kwargs.d=abc"],
            r"env_kwargs.d='abc' has the wrong type; ContinuousSeekEnv's d takes an integer",
        ),
        (["--env", ""], r"--env is empty"),
        (["--algo", " "], r"--algo is empty"),
        (["--threads", "100000"], r"--threads must be between 1 and the \d+ CPU cores here, got 100000"),
        (["--set", "buffer_size=100000000000"], r"buffer_size=100,000,000,000 needs at least [\d,.]+ GiB .* memory"),
    ],
)
def test_unreadable_empty_or_impossible_values_exit_2_naming_the_option(tmp_path, args, message):
    logdir = tmp_path / "bad"
    result = _train("--timesteps", "10", "--logdir", str(logdir), *args, check=False)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert __import__("re").search(message, result.stderr), result.stderr
    assert not logdir.exists()  # refused before anything was written


def test_an_empty_logdir_is_refused_and_nothing_is_written(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--timesteps", "10", "--logdir", ""],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 2 and "--logdir is empty" in result.stderr
    assert not any(tmp_path.iterdir())


def test_config_resolution_order():
    config = resolve_config("reengage/ContinuousSeek10-v0", "ddpg", alpha=0.0)
    assert (config["batch_size"], config["learning_rate"]) == (256, 5e-4)  # Table G.2, DDPG+HER
    config = resolve_config("reengage/ContinuousSeek10-v0", "ddpg", alpha=0.2)
    assert (config["batch_size"], config["learning_rate"]) == (512, 1e-3)  # Table G.2, ReenGAGE
    config = resolve_config("reengage/ContinuousSeek5-v0", "sac", alpha=0.1)
    assert (config["batch_size"], config["learning_rate"], config["action_noise_std"]) == (4096, 2.5e-3, None)
    config = resolve_config(
        "reengage/ContinuousSeek10-v0", "ddpg", alpha=0.2, assignments=["batch_size=64", "her.n_sampled_goal=8"]
    )
    assert config["batch_size"] == 64 and config["her"] == {"n_sampled_goal": 8, "goal_selection_strategy": "future"}
    assert (config["gamma"], config["tau"], config["action_noise_std"]) == (0.95, 0.005, 0.03)  # Table G.1


def _final_parameters(logdir):
    import gymnasium as gym
    import reengage.envs  # noqa: F401
    from reengage.agents import ReenGAGEDDPG

    # a HER agent needs an env to be rebuilt (stable-baselines3 sets the buffer up with it)
    model = ReenGAGEDDPG.load(logdir / "model.zip", env=gym.make("reengage/ContinuousSeek5-v0"))
    return model.policy.state_dict()


def test_killed_run_resumes_to_the_same_result(tmp_path):
    # long enough that the run is still going a moment after its first checkpoint (the hand-written fast
    # step finished 700 steps within that moment)
    common = [
        "--env",
        "reengage/ContinuousSeek5-v0",
        "--algo",
        "ddpg",
        "--alpha",
        "0.2",
        "--seed",
        "4",
        "--timesteps",
        "3000",
        "--set",
        "eval_freq=1500",
        *SMALL,
    ]
    reference = tmp_path / "uninterrupted"
    _train(*common, "--logdir", str(reference))

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *common, "--logdir", str(interrupted), "--checkpoint-every", "250"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 500
    while not (interrupted / "checkpoint" / "state.pkl").exists():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline
        time.sleep(0.2)
    time.sleep(0.5)  # let it run past the checkpoint, so that the kill loses work
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "model.zip").exists(), "the run finished before it could be killed"

    _train(*common, "--logdir", str(interrupted), "--checkpoint-every", "250", "--resume")
    segments = json.loads((interrupted / "segments.json").read_text())
    assert segments[0]["start"] == 0 and segments[1]["resumed"]
    assert segments[1]["start"] % 250 == 0 and 0 < segments[1]["start"] < 3000
    expected, resumed = _final_parameters(reference), _final_parameters(interrupted)
    assert all(torch.equal(expected[name], resumed[name]) for name in expected)
    assert read_scalars(interrupted)["eval/success_ever"] == read_scalars(reference)["eval/success_ever"]


def test_resume_refuses_a_changed_configuration(tmp_path):
    logdir = tmp_path / "run"
    _train("--timesteps", "300", "--logdir", str(logdir), "--checkpoint-every", "200", *SMALL)
    result = _train(
        "--timesteps",
        "300",
        "--logdir",
        str(logdir),
        "--checkpoint-every",
        "200",
        "--resume",
        *SMALL[:-1],
        "--set",
        "learning_rate=0.5",
        "--no-progress",
        check=False,
    )
    assert result.returncode == 2 and "learning_rate" in result.stderr
    again = _train("--timesteps", "300", "--logdir", str(logdir), *SMALL, check=False)
    assert again.returncode == 2 and "--resume" in again.stderr


@pytest.mark.parametrize("damage", ["delete", "garble"])
def test_a_lost_or_damaged_config_yaml_resumes_from_the_checkpoints_copy(tmp_path, damage):
    """The checkpoint carries the run's configuration: losing config.yaml never costs the checkpoints."""
    logdir = tmp_path / "run"
    common = [
        "--env",
        "reengage/ContinuousSeek5-v0",
        "--algo",
        "ddpg",
        "--alpha",
        "0.2",
        "--seed",
        "2",
        "--set",
        "eval_freq=200",
        "--checkpoint-every",
        "200",
        *SMALL,
    ]
    _train(*common, "--timesteps", "400", "--logdir", str(logdir))
    saved = (logdir / "config.yaml").read_text()
    if damage == "delete":
        (logdir / "config.yaml").unlink()
    else:
        (logdir / "config.yaml").write_bytes(b"\x00\xff: [unclosed")
    result = _train("--logdir", str(logdir), "--resume", "--timesteps", "600", "--no-progress")
    assert yaml.safe_load((logdir / "config.yaml").read_text()) == {**yaml.safe_load(saved), "timesteps": 600}
    assert [row.split(",")[0] for row in (logdir / "evaluations.csv").read_text().splitlines()[1:]] == [
        "200",
        "400",
        "600",
    ], result.stderr


@pytest.mark.parametrize(
    "assignment, message",
    [
        (
            "policy_kwargs.activation_fn=foo",
            r"policy_kwargs.activation_fn='foo' is not valid; it takes a torch.nn.Module class",
        ),
        (
            "policy_kwargs.optimizer_class=torch.optim.Nope",
            r"policy_kwargs.optimizer_class=.* takes a torch.optim.Optimizer",
        ),
        ("policy_kwargs.optimizer_kwargs={bogus: 1}", r"optimizer_kwargs.bogus is not an argument of Adam; valid keys"),
        ("policy_kwargs.optimizer_kwargs={betas: 3}", r"optimizer_kwargs=\{'betas': 3\} is refused by Adam"),
        ("policy_kwargs.optimizer_kwargs=3", r"optimizer_kwargs=3 is not valid; give a mapping"),
    ],
)
def test_values_that_reach_constructors_are_checked_before_anything_is_written(tmp_path, assignment, message):
    logdir = tmp_path / "bad"
    result = _train("--timesteps", "10", "--logdir", str(logdir), "--set", assignment, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert __import__("re").search(message, result.stderr), result.stderr
    assert not logdir.exists()
