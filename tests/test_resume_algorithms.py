"""Every algorithm of train.py resumes from a checkpoint to the parameters of an uninterrupted run."""

import json

import gymnasium as gym
import pytest
import torch

from reengage.experiment.build import agent_class
from reengage.experiment.config import resolve_config
from reengage.experiment.runner import train_run

CASES = {
    "sac": ("reengage/ContinuousSeek5-v0", ["net_arch=[16,16]", "batch_size=16", "learning_starts=50"]),
    "td3": ("reengage/ContinuousSeek5-v0", ["net_arch=[16,16]", "batch_size=16", "learning_starts=50"]),
    "dqn": ("reengage/BitFlipping-v0", ["net_arch=[16]", "learning_starts=50", "train_freq=10", "gradient_steps=2"]),
    "multi_ddpg": (
        "reengage/DriveSeek-v0",
        [
            "net_arch=[16]",
            "batch_size=16",
            "learning_starts=50",
            "policy_kwargs={encoder_arch: [16], embed_dim: 4, share_encoder: true}",
        ],
    ),
}


@pytest.mark.parametrize("algo", sorted(CASES))
def test_resume_from_checkpoint_matches_uninterrupted_run(tmp_path, algo):
    env_id, settings = CASES[algo]
    config = resolve_config(
        env_id,
        algo,
        None,
        240,
        settings + ["buffer_size=2000", "checkpoint_every=120", "eval_freq=120", "eval_episodes=2"],
    )
    train_run(config, 0, tmp_path / "full", progress=False)
    # a run that got 10 steps past its step-120 checkpoint and then died
    train_run(dict(config, timesteps=130), 0, tmp_path / "cut", progress=False)
    (tmp_path / "cut" / "model.zip").unlink()
    train_run(config, 0, tmp_path / "cut", progress=False, resume=True)
    segments = json.loads((tmp_path / "cut" / "segments.json").read_text())
    assert [(s["start"], s["resumed"]) for s in segments] == [(0, False), (120, True)]  # continued, not restarted

    cls = agent_class(config)
    env = gym.make(env_id, **config["env_kwargs"])
    full = cls.load(tmp_path / "full" / "model.zip", env=env).policy.state_dict()
    resumed = cls.load(tmp_path / "cut" / "model.zip", env=env).policy.state_dict()
    assert all(torch.equal(full[name], resumed[name]) for name in full)
