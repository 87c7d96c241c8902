"""With reengage_alpha = 0 each agent trains exactly like the stock stable-baselines3 class."""

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from reengage.agents import ReenGAGEDDPG, ReenGAGESAC, ReenGAGETD3
from stable_baselines3 import DDPG, SAC, TD3, HerReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise

PAIRS = [(ReenGAGEDDPG, DDPG), (ReenGAGETD3, TD3), (ReenGAGESAC, SAC)]
STEPS = 120


def _kwargs(stock_cls):
    kwargs = dict(
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_starts=40,
        batch_size=32,
        seed=3,
        gamma=0.95,
        policy_kwargs=dict(net_arch=[16, 16], share_features_extractor=False),
    )
    if stock_cls is not SAC:
        kwargs["action_noise"] = NormalActionNoise(np.zeros(5), 0.1 * np.ones(5))
    return kwargs


def _train(cls, stock_cls, **extra):
    model = cls("MultiInputPolicy", gym.make("reengage/ContinuousSeek5-v0"), **_kwargs(stock_cls), **extra)
    model.learn(STEPS)
    return model


def _parameters(model):
    return {name: tensor.clone() for name, tensor in model.policy.state_dict().items()}


@pytest.mark.parametrize("cls, stock_cls", PAIRS)
def test_alpha_zero_is_the_stock_algorithm(cls, stock_cls):
    stock = _parameters(_train(stock_cls, stock_cls))
    ours = _parameters(_train(cls, stock_cls, reengage_alpha=0.0))
    assert stock.keys() == ours.keys()
    assert all(torch.equal(stock[name], ours[name]) for name in stock)


@pytest.mark.parametrize("cls, stock_cls", PAIRS)
def test_alpha_zero_with_the_path_running_is_the_stock_algorithm(cls, stock_cls):
    stock = _parameters(_train(stock_cls, stock_cls))
    model = _train(cls, stock_cls, reengage_alpha=0.0, reengage_monitor=True)
    assert "train/reengage_loss" in model.logger.name_to_value  # the term was computed
    ours = _parameters(model)
    assert all(torch.allclose(stock[name], ours[name], rtol=0, atol=1e-7) for name in stock)


@pytest.mark.parametrize("monitor", [False, True])
def test_sac_with_gsde_at_alpha_zero_is_the_stock_algorithm(monitor):
    """gSDE redraws its exploration matrix from the global generator; the term (at zero weight) draws nothing."""
    kwargs = dict(_kwargs(SAC), use_sde=True)
    stock = SAC("MultiInputPolicy", gym.make("reengage/ContinuousSeek5-v0"), **kwargs)
    stock.learn(300)
    model = ReenGAGESAC(
        "MultiInputPolicy",
        gym.make("reengage/ContinuousSeek5-v0"),
        **kwargs,
        reengage_alpha=0.0,
        reengage_monitor=monitor,
    )
    model.learn(300)
    assert ("train/reengage_loss" in model.logger.name_to_value) == monitor
    stock, ours = _parameters(stock), _parameters(model)
    assert stock.keys() == ours.keys() and "actor.log_std" in ours
    assert all(torch.equal(stock[name], ours[name]) for name in stock)


@pytest.mark.parametrize("cls, stock_cls", PAIRS[:1])
def test_a_positive_alpha_changes_training(cls, stock_cls):
    stock = _parameters(_train(stock_cls, stock_cls))
    ours = _parameters(_train(cls, stock_cls, reengage_alpha=0.5))
    critic_names = [name for name in stock if name.startswith("critic.")]
    assert any(not torch.allclose(stock[name], ours[name]) for name in critic_names)


def test_save_load_evaluate_and_callbacks(tmp_path):
    class CountSteps(BaseCallback):
        def __init__(self):
            super().__init__()
            self.calls = 0

        def _on_step(self):
            self.calls += 1
            return True

    counter = CountSteps()
    model = ReenGAGETD3(
        "MultiInputPolicy", gym.make("reengage/ContinuousSeek5-v0"), **_kwargs(TD3), reengage_alpha=0.3, c_low=-1.0
    )
    model.learn(60, callback=counter)
    assert counter.calls == 60
    path = tmp_path / "agent.zip"
    model.save(path)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = ReenGAGETD3.load(path, env=gym.make("reengage/ContinuousSeek5-v0"))
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.reengage_alpha == 0.3 and loaded.reengage_mode == "sparse"
    for name, tensor in model.policy.state_dict().items():
        assert torch.equal(tensor, loaded.policy.state_dict()[name])
    mean_reward, _ = evaluate_policy(loaded, loaded.get_env(), n_eval_episodes=2)
    assert -10.0 <= mean_reward <= 0.0
    loaded.learn(60, reset_num_timesteps=False)  # the hook is live again after loading
    assert "train/reengage_loss" in loaded.logger.name_to_value
