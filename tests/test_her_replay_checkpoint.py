"""FastHerReplayBuffer through the project's checkpoints: bit-exact resume, and only the filled part saved.

The buffer is chosen with the existing config keys (``her: null`` and ``replay_buffer_class``), so
these runs go through train.py's own loop and checkpoint code unchanged.
"""

import json

import gymnasium as gym
import pytest
import torch

from reengage.experiment.build import agent_class
from reengage.experiment.config import resolve_config
from reengage.experiment.run_folder import CHECKPOINT_DIR
from reengage.experiment.runner import train_run

FAST_HER = [
    "her=null",
    "replay_buffer_class=reengage.agents.her_replay:FastHerReplayBuffer",
    "replay_buffer_kwargs={n_sampled_goal: 4, goal_selection_strategy: future}",
]
CASES = {
    "td3": ("reengage/ContinuousSeek5-v0", ["net_arch=[16,16]", "batch_size=16", "learning_starts=50"]),
    "dqn": ("reengage/BitFlipping-v0", ["net_arch=[16]", "learning_starts=50", "train_freq=10", "gradient_steps=2"]),
}


@pytest.mark.parametrize("algo", sorted(CASES))
def test_resume_with_fast_her_matches_uninterrupted_run(tmp_path, algo):
    env_id, settings = CASES[algo]
    config = resolve_config(
        env_id,
        algo,
        None,
        240,
        settings + FAST_HER + ["buffer_size=100000", "checkpoint_every=120", "eval_freq=120", "eval_episodes=2"],
    )
    train_run(config, 0, tmp_path / "full", progress=False)
    train_run(dict(config, timesteps=130), 0, tmp_path / "cut", progress=False)  # died 10 steps after a checkpoint
    buffer_file = tmp_path / "cut" / CHECKPOINT_DIR / "replay_buffer.pkl"
    # 120 of 100,000 rows: a few tens of kB, not the ~10 MB of the whole preallocated storage
    assert buffer_file.stat().st_size < 200_000
    (tmp_path / "cut" / "model.zip").unlink()
    train_run(config, 0, tmp_path / "cut", progress=False, resume=True)
    segments = json.loads((tmp_path / "cut" / "segments.json").read_text())
    assert [(s["start"], s["resumed"]) for s in segments] == [(0, False), (120, True)]

    cls = agent_class(config)
    env = gym.make(env_id, **config["env_kwargs"])
    full = cls.load(tmp_path / "full" / "model.zip", env=env).policy.state_dict()
    resumed = cls.load(tmp_path / "cut" / "model.zip", env=env).policy.state_dict()
    assert all(torch.equal(full[name], resumed[name]) for name in full)
