"""configs/bit_flipping.yaml and the 'dqn' entry of the algorithm registry."""

from __future__ import annotations

import pytest
import torch
from reengage.agents import ReenGAGEDQN

from reengage.algorithms import algo_spec
from reengage.experiment.build import build_agent, make_training_env
from reengage.experiment.config import resolve_config


@pytest.mark.parametrize(
    "env_id, n_bits",
    [("reengage/BitFlipping-v0", 10), ("reengage/BitFlipping20-v0", 20), ("reengage/BitFlipping40-v0", 40)],
)
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_config_follows_the_appendix(env_id, n_bits, alpha):
    config = resolve_config(env_id, "dqn", alpha=alpha)
    assert config["learning_rate"] == 1e-3 and config["batch_size"] == 128 and config["gamma"] == 0.98
    assert config["net_arch"] == [256] and config["her"] == {"n_sampled_goal": 4, "goal_selection_strategy": "future"}
    # one HER-paper cycle = 16 episodes of n steps, then 40 gradient steps and one Polyak move of the target
    assert config["train_freq"] == 16 * n_bits and config["gradient_steps"] == 40
    assert config["algo_kwargs"]["target_update_interval"] == 16 * n_bits and config["tau"] == 0.05
    assert config["algo_kwargs"]["exploration_initial_eps"] == config["algo_kwargs"]["exploration_final_eps"] == 0.2
    assert config["reengage_alpha"] == alpha


def test_paper_budgets():
    assert resolve_config("reengage/BitFlipping20-v0", "dqn")["timesteps"] == 200_000
    assert resolve_config("reengage/BitFlipping40-v0", "dqn")["timesteps"] == 1_600_000


def test_registry_builds_reengage_dqn():
    assert not algo_spec("dqn").continuous_actions
    config = resolve_config(
        "reengage/BitFlipping20-v0", "dqn", alpha=1.0, assignments=["algo_kwargs.reengage_tau=0", "buffer_size=1000"]
    )
    model = build_agent(config, make_training_env(config, seed=0), seed=0, device="cpu")
    assert isinstance(model, ReenGAGEDQN)
    assert model.reengage_alpha == 1.0 and model.reengage_tau == 0.0 and not model.reengage_soft_value_target
    assert model.target_update_interval == 320 and model.exploration_schedule(0.5) == pytest.approx(0.2)
    assert model.policy.q_net.q_net[0].in_features == 60 and model.policy.q_net.q_net[-1].out_features == 20
    assert isinstance(model.policy.optimizer, torch.optim.Adam)


def test_continuous_algos_are_not_configured_for_bit_flipping():
    with pytest.raises(ValueError, match="valid algos: dqn"):
        resolve_config("reengage/BitFlipping20-v0", "ddpg")
