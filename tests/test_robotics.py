"""Robotics tasks (gymnasium-robotics on MuJoCo), the extra's absence, parallel environments and resume."""

import json
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from reengage.agents.normalizer import normalizing_extractors
from reengage.envs.robotics import INSTALL_HINT, ROBOTICS_IDS, require_robotics

import train
from reengage.experiment.build import agent_class
from reengage.experiment.config import resolve_config
from reengage.experiment.runner import train_run

# a small, fast version of the robotics recipe: every option on, tiny networks
TINY = [
    "net_arch=[16,16]",
    "batch_size=32",
    "learning_starts=100",
    "buffer_size=5000",
    "train_freq=25",
    "gradient_steps=4",
    "eval_episodes=1",
]


def _robotics_or_skip():
    pytest.importorskip("gymnasium_robotics")
    require_robotics()


@pytest.mark.parametrize("env_id", ["HandReach-v3", "HandManipulateBlock-v1"])
def test_hand_environments_step_under_the_installed_mujoco(env_id):
    _robotics_or_skip()
    import mujoco

    assert mujoco.__version__.startswith("3."), "gymnasium-robotics 1.4.2 fails at reset under mujoco 4"
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    goal_dim = {"HandReach-v3": 15, "HandManipulateBlock-v1": 7}[env_id]
    assert obs["desired_goal"].shape == (goal_dim,)
    env.action_space.seed(0)
    for _ in range(10):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert np.all(np.isfinite(obs["observation"])) and reward in (-1.0, 0.0)
    # the vectorised reward HER relabels with
    batch = env.unwrapped.compute_reward(np.stack([obs["achieved_goal"]] * 3), np.stack([obs["desired_goal"]] * 3), {})
    assert batch.shape == (3,)


def test_fetchreach_smoke_run_trains_with_the_recipe_and_updates_the_normaliser(tmp_path):
    _robotics_or_skip()
    config = resolve_config("FetchReach-v4", "ddpg", 0.2, 200, TINY + ["eval_freq=200", "n_envs=1"])
    assert config["target_value_clip"] and config["action_l2"] == 1.0 and config["random_action_prob"] == 0.3
    final = train_run(config, 0, tmp_path / "run", progress=False)
    model = agent_class(config).load(final, env=gym.make("FetchReach-v4"))
    goal = normalizing_extractors(model.policy)[0].normalizer_for("desired_goal")
    assert goal.stat_count.item() == 2 * 200  # achieved and desired goal of every collected step
    assert torch.all(goal.stat_var > 0)
    rows = (tmp_path / "run" / "evaluations.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and rows[-1].startswith("200,")


def test_a_robotics_env_without_the_extra_exits_2_with_the_install_command(tmp_path, monkeypatch, capsys):
    # simulate the extra's absence: importing gymnasium_robotics fails
    monkeypatch.setitem(sys.modules, "gymnasium_robotics", None)
    code = train.main(
        [
            "--env",
            "HandReach-v3",
            "--algo",
            "ddpg",
            "--timesteps",
            "100",
            "--logdir",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "HandReach-v3" in err and INSTALL_HINT in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "setting, message",
    [
        ("random_action_prob=1.5", "random_action_prob must be in [0, 1]"),
        ("n_envs=0", "n_envs must be >= 1"),
        ("obs_normalization={clip: 5}", "valid keys: clip_obs, clip_normalized, std_floor"),
        (
            "obs_normalization={clip_obs: -1}",
            "obs_normalization.clip_obs=-1 is out of range; obs_normalization.clip_obs must be > 0",
        ),
    ],
)
def test_bad_values_exit_2_naming_the_value_and_the_range(tmp_path, capsys, setting, message):
    code = train.main(
        [
            "--env",
            "reengage/ContinuousSeek5-v0",
            "--algo",
            "ddpg",
            "--set",
            setting,
            "--logdir",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 2 and message in capsys.readouterr().err


def test_recipe_options_are_refused_for_algorithms_without_them(tmp_path, capsys):
    code = train.main(
        [
            "--env",
            "reengage/ContinuousSeek5-v0",
            "--algo",
            "sac",
            "--set",
            "action_l2=1.0",
            "--logdir",
            str(tmp_path / "run"),
            "--no-progress",
        ]
    )
    assert code == 2 and "action_l2 is an option of ddpg, td3; algo 'sac' does not take it" in capsys.readouterr().err
    assert ROBOTICS_IDS == ("FetchReach-v4", "HandReach-v3", "HandManipulateBlock-v1")


@pytest.mark.parametrize("trainer", ["sb3", "fast"])
def test_two_environments_train_and_resume_to_the_uninterrupted_result(tmp_path, trainer):
    """n_envs = 2 (subprocesses) with the normaliser and the recipe, on either trainer: a killed run resumes exactly."""
    settings = [
        f"trainer={trainer}",
        "net_arch=[16,16]",
        "batch_size=16",
        "learning_starts=50",
        "buffer_size=2000",
        "n_envs=2",
        "train_freq=5",
        "gradient_steps=2",
        "checkpoint_every=120",
        "eval_freq=120",
        "eval_episodes=2",
        "obs_normalization={}",
        "target_value_clip=true",
        "action_l2=1.0",
        "random_action_prob=0.3",
    ]
    config = resolve_config("reengage/ContinuousSeek5-v0", "ddpg", 0.2, 240, settings)
    train_run(config, 0, tmp_path / "full", progress=False)
    train_run(dict(config, timesteps=140), 0, tmp_path / "cut", progress=False)  # died after its 120 checkpoint
    (tmp_path / "cut" / "model.zip").unlink()
    train_run(config, 0, tmp_path / "cut", progress=False, resume=True)
    segments = json.loads((tmp_path / "cut" / "segments.json").read_text())
    assert [(s["start"], s["resumed"]) for s in segments] == [(0, False), (120, True)]
    cls = agent_class(config)
    env = gym.make("reengage/ContinuousSeek5-v0")
    full = cls.load(tmp_path / "full" / "model.zip", env=env).policy.state_dict()
    resumed = cls.load(tmp_path / "cut" / "model.zip", env=env).policy.state_dict()
    assert any("stat_mean" in name for name in full)  # the normaliser is part of what is saved
    assert all(torch.equal(full[name], resumed[name]) for name in full)


@pytest.mark.slow
def test_fetchreach_two_envs_resume_mid_episode_to_the_uninterrupted_result(tmp_path):
    _robotics_or_skip()
    config = resolve_config("FetchReach-v4", "ddpg", 0.2, 500, TINY + ["eval_freq=250", "checkpoint_every=230"])
    train_run(config, 0, tmp_path / "full", progress=False)
    train_run(dict(config, timesteps=260), 0, tmp_path / "cut", progress=False)
    (tmp_path / "cut" / "model.zip").unlink()
    train_run(config, 0, tmp_path / "cut", progress=False, resume=True)
    cls = agent_class(config)
    env = gym.make("FetchReach-v4")
    full = cls.load(tmp_path / "full" / "model.zip", env=env).policy.state_dict()
    resumed = cls.load(tmp_path / "cut" / "model.zip", env=env).policy.state_dict()
    assert all(torch.equal(full[name], resumed[name]) for name in full)
