"""ReenGAGE-TQC: stock TQC at alpha 0, the term against a plain reference and finite differences, the fast path."""

from __future__ import annotations

import math

import gymnasium as gym
import pytest
import reengage.envs  # noqa: F401
import stable_baselines3.common.policies
import torch
from reengage.agents import ReenGAGETQC
from reengage.agents.fast import FastReenGAGETQC
from reengage.agents.tqc import truncated_quantiles
from sb3_contrib import TQC
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.logger import Logger

ENV = "reengage/ContinuousSeek5-v0"


def _kwargs(**extra):
    kwargs = dict(
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_starts=40,
        batch_size=32,
        buffer_size=2000,
        seed=3,
        gamma=0.95,
        policy_kwargs=dict(net_arch=[16, 16], n_quantiles=5, n_critics=2, share_features_extractor=False),
        top_quantiles_to_drop_per_net=2,
    )
    kwargs.update(extra)
    return kwargs


def _parameters(model):
    return {name: tensor.clone() for name, tensor in model.policy.state_dict().items()}


@pytest.mark.parametrize("monitor", [False, True])
def test_alpha_zero_trains_exactly_like_stock_tqc(monitor):
    stock = TQC("MultiInputPolicy", gym.make(ENV), **_kwargs())
    stock.learn(300)
    ours = ReenGAGETQC("MultiInputPolicy", gym.make(ENV), **_kwargs(), reengage_alpha=0.0, reengage_monitor=monitor)
    ours.learn(300)
    assert ("train/reengage_loss" in ours.logger.name_to_value) == monitor  # the term was computed (or not)
    a, b = _parameters(stock), _parameters(ours)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_a_positive_alpha_changes_the_critic():
    stock = _parameters(ReenGAGETQC("MultiInputPolicy", gym.make(ENV), **_kwargs(), reengage_alpha=0.0).learn(150))
    ours = _parameters(ReenGAGETQC("MultiInputPolicy", gym.make(ENV), **_kwargs(), reengage_alpha=0.5).learn(150))
    assert any(not torch.equal(stock[name], ours[name]) for name in stock if name.startswith("critic."))


def _trained_agent_and_batch(alpha=0.3, **extra):
    agent = ReenGAGETQC("MultiInputPolicy", gym.make(ENV), **_kwargs(**extra), reengage_alpha=alpha)
    agent.learn(120)  # some training, so that the networks are not at their initialisation
    agent.set_logger(Logger(folder=None, output_formats=[]))
    batch = agent.replay_buffer.sample(24)
    dones = batch.dones.clone()
    dones[::5] = 1.0
    batch = batch._replace(dones=dones)
    assert 0 < float((batch.rewards == -1).float().mean()) < 1  # both sides of the sparse mask
    return agent, batch


def _row(obs, i):
    return {key: value[i : i + 1] for key, value in obs.items()}


def _plain_target_value(agent, next_obs, goal, eps, ent_coef):
    """TQC's target value at one s' for goal ``goal``, written out: the squashed Gaussian by hand."""
    obs = {**next_obs, "desired_goal": goal}
    mean, log_std, _ = agent.actor.get_action_dist_params(obs)
    std = torch.exp(log_std)
    u = mean + std * eps
    action = torch.tanh(u)
    log_prob = (-0.5 * ((u - mean) / std) ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum()
    log_prob = log_prob - torch.log(1 - action**2 + 1e-6).sum()
    z = agent.critic_target(obs, action).flatten()  # the N * M quantiles
    k = agent.top_quantiles_to_drop_per_net * agent.critic.n_critics
    kept = torch.sort(z).values[: z.numel() - k]
    return kept.mean() - ent_coef * log_prob


def test_term_equals_a_per_sample_reference():
    agent, batch = _trained_agent_and_batch()
    context = agent._batch_context(batch)
    ent_coef = float(context["ent_coef"])
    eps = torch.randn(batch.actions.shape, generator=torch.Generator().manual_seed(5))
    agent._draw_normal = lambda shape: eps  # the term's target-action noise
    loss, _ = agent.goal_gradient_loss(batch, context)

    total = 0.0
    n, goal_dim = batch.actions.shape[0], batch.observations["desired_goal"].shape[1]
    for net in range(agent.critic.n_critics):
        squares = 0.0
        for i in range(n):
            goal = batch.observations["desired_goal"][i : i + 1].clone().requires_grad_(True)
            obs = {**_row(batch.observations, i), "desired_goal": goal}
            q = agent.critic(obs, batch.actions[i : i + 1])[0, net].mean()
            (q_grad,) = torch.autograd.grad(q, goal)
            next_goal = batch.next_observations["desired_goal"][i : i + 1].clone().requires_grad_(True)
            value = _plain_target_value(agent, _row(batch.next_observations, i), next_goal, eps[i : i + 1], ent_coef)
            (target_grad,) = torch.autograd.grad(value, next_goal)
            mask = float(batch.rewards[i] == -1.0)
            residual = mask * (q_grad - agent.gamma * (1 - float(batch.dones[i])) * target_grad)
            squares += float((residual**2).sum())
        total += squares / (n * goal_dim)
    assert loss.item() > 0
    assert loss.item() == pytest.approx(total, rel=1e-5)


def test_target_goal_gradient_matches_finite_differences(monkeypatch):
    agent, batch = _trained_agent_and_batch()
    # central differences in double precision: SB3's preprocessing would cast the (Box) observations to float32
    monkeypatch.setattr(stable_baselines3.common.policies, "preprocess_obs", lambda obs, *args, **kwargs: obs)
    agent.policy.to(torch.float64)
    batch = batch._replace(
        observations={k: v.double() for k, v in batch.observations.items()},
        next_observations={k: v.double() for k, v in batch.next_observations.items()},
        actions=batch.actions.double(),
    )
    context = {"ent_coef": agent._batch_context(batch)["ent_coef"].double()}
    eps = torch.randn(batch.actions.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    agent._draw_normal = lambda shape: eps
    gradient = agent.target_goal_gradient(batch, context)

    ent_coef = float(context["ent_coef"])

    def value(goal):  # the plain target value of every row (not the agent's _target_value)
        with torch.no_grad():
            return torch.stack(
                [
                    _plain_target_value(
                        agent, _row(batch.next_observations, i), goal[i : i + 1], eps[i : i + 1], ent_coef
                    )
                    for i in range(goal.shape[0])
                ]
            )

    goal = batch.next_observations["desired_goal"]
    h = 1e-6
    numeric = torch.zeros_like(gradient)
    for dim in range(goal.shape[1]):
        step = torch.zeros_like(goal)
        step[:, dim] = h
        numeric[:, dim] = (value(goal + step) - value(goal - step)) / (2 * h)
    assert gradient.abs().max() > 1e-3  # not trivially zero
    torch.testing.assert_close(gradient, numeric, rtol=1e-4, atol=1e-6)


def test_truncation_drops_the_top_quantiles_per_net():
    quantiles = torch.tensor([[[0.0, 5.0, 1.0], [4.0, 2.0, 3.0]]])  # one row, 2 nets x 3 quantiles
    assert truncated_quantiles(quantiles, 1).tolist() == [[0.0, 1.0, 2.0, 3.0]]
    assert truncated_quantiles(quantiles, 0).tolist() == [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]]


@pytest.mark.parametrize("alpha", [0.0, 0.3])
def test_fast_and_sb3_paths_make_the_same_tqc_update(alpha):
    """One gradient step from the same parameters on the same batch; the term's noise is the TD target's sample."""
    kwargs = _kwargs(learning_starts=80, batch_size=64)
    fast = FastReenGAGETQC("MultiInputPolicy", gym.make(ENV), **kwargs, reengage_alpha=alpha)
    fast.learn(80)  # random phase only: fills the buffer, trains nothing
    batch = fast.replay_buffer.sample(64)
    batch = batch._replace(dones=batch.dones.index_fill(0, torch.arange(0, 64, 7), 1.0))
    stock = ReenGAGETQC("MultiInputPolicy", gym.make(ENV), **kwargs, reengage_alpha=alpha)
    stock.policy.load_state_dict(fast.policy.state_dict())
    stock.set_logger(Logger(folder=None, output_formats=[]))
    before = _parameters(fast)
    for agent in (fast, stock):
        agent.replay_buffer.sample = lambda *args, **kw: batch
    torch.manual_seed(200)
    torch.empty(batch.actions.shape).normal_()  # the policy action's noise
    next_action_noise = torch.empty(batch.actions.shape).normal_()
    stock._draw_normal = lambda shape: next_action_noise  # the mixin's term: the TD target's sample
    torch.manual_seed(200)
    fast.train(1, 64)
    torch.manual_seed(200)
    stock.train(1, 64)
    after, reference = _parameters(fast), _parameters(stock)
    assert any(not torch.equal(before[name], after[name]) for name in before)  # it trained
    for name in after:
        torch.testing.assert_close(after[name], reference[name], rtol=1e-5, atol=1e-6, msg=name)
    for key in ("train/critic_loss", "train/actor_loss", "train/ent_coef"):
        assert fast.logger.name_to_value[key] == pytest.approx(stock.logger.name_to_value[key], rel=1e-5)
    if alpha > 0:
        assert fast.logger.name_to_value["train/reengage_loss"] == pytest.approx(
            stock.logger.name_to_value["train/reengage_loss"], rel=1e-4
        )
