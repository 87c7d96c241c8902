"""configs/drive_seek.yaml and configs/noisy_seek.yaml carry Table G.4 and build Multi-ReenGAGE agents."""

from __future__ import annotations

import pytest
from reengage.agents import DeepSetsTD3Policy, GoalSetReplayBuffer, MultiReenGAGEDDPG

from reengage.algorithms import algo_spec
from reengage.experiment.build import build_agent, make_training_env
from reengage.experiment.config import resolve_config


@pytest.mark.parametrize("env_id, noise", [("reengage/DriveSeek-v0", 0.05), ("reengage/NoisySeek-v0", 0.1)])
def test_table_g4_settings(env_id, noise):
    config = resolve_config(env_id, "multi_ddpg", alpha=5.0)
    expected = {
        "buffer_size": 1_000_000,
        "train_freq": 1,
        "gradient_steps": 1,
        "learning_starts": 1000,
        "gamma": 0.95,
        "batch_size": 256,
        "learning_rate": 1e-3,
        "tau": 0.005,
        "action_noise_std": noise,
        "timesteps": 160_000,
        "eval_freq": 4000,
        "eval_episodes": 100,
        "her": None,
        "net_arch": [400],
        "reengage_alpha": 5.0,
    }
    assert {key: config[key] for key in expected} == expected
    assert config["policy_kwargs"]["encoder_arch"] == [400, 400] and config["policy_kwargs"]["embed_dim"] == 20
    assert algo_spec("multi_ddpg").continuous_actions


def test_config_builds_the_agent_with_deep_sets_and_goal_set_replay():
    config = resolve_config(
        "reengage/NoisySeek-v0",
        "multi_ddpg",
        alpha=0.0,
        assignments=["net_arch=[8]", "policy_kwargs={encoder_arch: [8], embed_dim: 4}", "buffer_size=500"],
    )
    agent = build_agent(config, make_training_env(config, seed=0), seed=0)
    assert isinstance(agent, MultiReenGAGEDDPG) and agent.reengage_alpha == 0.0
    assert isinstance(agent.policy, DeepSetsTD3Policy) and agent.policy.encoder_arch == [8]
    assert isinstance(agent.replay_buffer, GoalSetReplayBuffer)
