"""tqc and crossq in the registry, the configurations and train.py; CrossQ's refusal and its reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest
import reengage.envs  # noqa: F401
import sb3_contrib
from reengage.agents import ReenGAGECrossQ
from stable_baselines3 import HerReplayBuffer

from reengage.algorithms import algorithm_class, detect_algorithm, trainable_algo_spec
from reengage.experiment.build import agent_class
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
    "eval_episodes=2",
    "--set",
    "buffer_size=2000",
    "--set",
    "eval_freq=300",
    "--no-progress",
]


def _train(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )


@pytest.mark.parametrize("trainer, cls_name", [("fast", "FastReenGAGETQC"), ("sb3", "ReenGAGETQC")])
def test_train_py_trains_tqc_on_both_trainers(tmp_path, trainer, cls_name):
    logdir = tmp_path / "run"
    result = _train(
        "--env",
        "reengage/ContinuousSeek5-v0",
        "--algo",
        "tqc",
        "--timesteps",
        "300",
        "--trainer",
        trainer,
        "--logdir",
        str(logdir),
        *SMALL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    scalars = read_scalars(logdir)
    assert "train/reengage_loss" in scalars and "train/critic_loss" in scalars
    config = resolve_config("reengage/ContinuousSeek5-v0", "tqc", assignments=[f"trainer={trainer}"])
    assert agent_class(config).__name__ == cls_name


def test_train_py_refuses_crossq_with_the_reason_and_writes_nothing(tmp_path):
    logdir = tmp_path / "run"
    result = _train("--env", "reengage/ContinuousSeek5-v0", "--algo", "crossq", "--logdir", str(logdir))
    assert result.returncode == 2
    assert "algo 'crossq' cannot be trained here" in result.stderr and "dict (goal-conditioned)" in result.stderr
    assert "valid algos:" in result.stderr and "tqc" in result.stderr and "Traceback" not in result.stderr
    assert not logdir.exists()


def test_stock_crossq_takes_no_dict_observations():
    """The reason for the refusal: if sb3-contrib adds dict observations, ReenGAGE-CrossQ becomes possible."""
    env = gym.make("reengage/ContinuousSeek5-v0")
    for policy in ("MultiInputPolicy", "MlpPolicy"):
        with pytest.raises(ValueError):
            sb3_contrib.CrossQ(policy, env, replay_buffer_class=HerReplayBuffer)


def test_the_crossq_agent_refuses_to_be_built():
    with pytest.raises(ValueError, match="no dict .goal-conditioned. observations"):
        ReenGAGECrossQ("MlpPolicy", gym.make("Pendulum-v1"))
    with pytest.raises(ValueError, match="valid algos: .*tqc"):
        trainable_algo_spec("crossq")


def test_stock_classes_come_from_sb3_contrib_and_saved_tqc_models_are_recognised(tmp_path):
    assert algorithm_class("TQC") is sb3_contrib.TQC and algorithm_class("CrossQ") is sb3_contrib.CrossQ
    model = sb3_contrib.TQC(
        "MultiInputPolicy", gym.make("reengage/ContinuousSeek5-v0"), policy_kwargs=dict(net_arch=[8], n_quantiles=3)
    )
    model.save(tmp_path / "model.zip")
    assert detect_algorithm(tmp_path / "model.zip") == "TQC"


def test_fetch_configurations_hold_the_zoo_settings():
    pytest.importorskip("gymnasium_robotics")
    reach = resolve_config("FetchReach-v4", "tqc", alpha=0.2)
    assert (reach["timesteps"], reach["batch_size"], reach["gamma"], reach["learning_rate"]) == (20000, 256, 0.95, 1e-3)
    assert reach["net_arch"] == [64, 64] and reach["policy_kwargs"] == {"n_critics": 1}
    assert reach["learning_starts"] == 1000 and reach["obs_normalization"] is not None
    assert reach["her"] == {"n_sampled_goal": 4, "goal_selection_strategy": "future"}
    push = resolve_config("FetchPush-v4", "tqc", alpha=0.0)
    assert (push["timesteps"], push["batch_size"], push["gamma"], push["tau"]) == (1_000_000, 2048, 0.95, 0.05)
    assert push["net_arch"] == [512, 512, 512] and push["policy_kwargs"] == {"n_critics": 2}
    for config in (reach, push):  # TQC + HER as the zoo trains it, without the baselines' DDPG recipe
        assert config["action_noise_std"] is None and config["random_action_prob"] == 0.0
        assert config["n_envs"] == 1 and config["train_freq"] == 1 and config["gradient_steps"] == 1


def test_certification_reads_a_tqc_policy_deterministically():
    """The smoothing adapter asks SAC's family (TQC too) for its deterministic action, as predict() does."""
    import numpy as np

    from reengage.robustness.smoothing import PolicyAdapter

    env = gym.make("reengage/ContinuousSeek5-v0")
    model = sb3_contrib.TQC("MultiInputPolicy", env, policy_kwargs=dict(net_arch=[8], n_quantiles=3), seed=0)
    obs, _ = env.reset(seed=0)
    adapter = PolicyAdapter.from_sb3(model)
    actions = adapter.actions(
        adapter.to_tensors({key: np.repeat(value[None], 4, axis=0) for key, value in obs.items()})
    )
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(actions, np.repeat(expected[None], 4, axis=0), atol=1e-6)
