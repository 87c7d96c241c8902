"""The hand-written ReLU-MLP calculus (agents/manual_mlp.py) against autograd, and the hand-written
TD3/DDPG step against the autograd fast step (``manual_update=False``) and the loss definitions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from reengage.agents.fast import FastReenGAGEDDPG, FastReenGAGETD3
from reengage.agents.manual_mlp import (
    ReluMLP,
    mlp_backward,
    relu_mlp_forward,
    value_head_backward,
    value_input_gradient,
    value_pre_activation_gradients,
)
from stable_baselines3.common.logger import Logger
from torch import nn

from reengage import losses

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_fast_path import _agent, _assert_same_parameters, _policy_tensors  # noqa: E402


def _mlp(sizes: list[int], tanh: bool = False, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for index in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[index], sizes[index + 1]))
        if index < len(sizes) - 2:
            layers.append(nn.ReLU())
    if tanh:
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def _grads(network: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in network.parameters()]


def test_relu_mlp_view_accepts_only_plain_relu_mlps():
    assert ReluMLP.of(_mlp([4, 8, 1])) is not None
    assert ReluMLP.of(_mlp([4, 8, 3], tanh=True)).tanh_output  # type: ignore[union-attr]
    assert ReluMLP.of(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))) is None
    assert ReluMLP.of(nn.Sequential(nn.Linear(4, 8, bias=False), nn.ReLU(), nn.Linear(8, 1))) is None
    assert ReluMLP.of(nn.Linear(4, 1)) is None


@pytest.mark.parametrize("hidden", [[16], [32, 32], [16, 24, 20]])
def test_value_head_backward_equals_autograd_double_backward(hidden):
    """Parameter gradients of sum(dq * q) + sum(E * dq/dx[:, goal]) with masks held constant, as autograd does."""
    network = _mlp([12, *hidden, 1], seed=len(hidden))
    mlp = ReluMLP.of(network)
    assert mlp is not None
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randn(64, 12, generator=generator)
    output_grad = torch.randn(64, 1, generator=generator)
    error = torch.randn(64, 5, generator=generator)
    goal = slice(4, 9)

    leaf = inputs.clone().requires_grad_(True)
    q = network(leaf)
    (input_grad,) = torch.autograd.grad(q.sum(), leaf, create_graph=True)
    network.zero_grad()
    ((output_grad * q).sum() + (error * input_grad[:, goal]).sum()).backward()
    expected = _grads(network)

    with torch.no_grad():
        values, hidden_values = relu_mlp_forward(mlp, inputs)
        us = value_pre_activation_gradients(mlp, hidden_values)
        torch.testing.assert_close(values, q.detach(), rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(
            value_input_gradient(mlp, us, goal), input_grad[:, goal].detach(), rtol=1e-5, atol=1e-7
        )
        torch.testing.assert_close(
            value_input_gradient(mlp, us, slice(None)), input_grad.detach(), rtol=1e-5, atol=1e-7
        )
        network.zero_grad()
        value_head_backward(mlp, hidden_values, us, output_grad, error, goal)
    for name, got, want in zip([n for n, _ in network.named_parameters()], _grads(network), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)
    # without a term: the TD backward alone
    network.zero_grad()
    (output_grad * network(inputs)).sum().backward()
    expected = _grads(network)
    with torch.no_grad():
        value_head_backward(mlp, hidden_values, us, output_grad)
    for got, want in zip(_grads(network), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_mlp_backward_equals_autograd_for_a_tanh_actor():
    network = _mlp([10, 32, 32, 4], tanh=True, seed=5)
    mlp = ReluMLP.of(network)
    assert mlp is not None
    generator = torch.Generator().manual_seed(4)
    inputs = torch.randn(50, 10, generator=generator)
    output_grad = torch.randn(50, 4, generator=generator)
    leaf = inputs.clone().requires_grad_(True)
    out = network(leaf)
    network.zero_grad()
    (output_grad * out).sum().backward()
    with torch.no_grad():
        values, hidden = relu_mlp_forward(mlp, inputs)
        torch.testing.assert_close(values, out.detach(), rtol=1e-6, atol=1e-7)
        expected = _grads(network)
        network.zero_grad()
        input_grad = mlp_backward(mlp, hidden, values, output_grad, input_columns=slice(3, 8))
    for got, want in zip(_grads(network), expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(input_grad, leaf.grad[:, 3:8], rtol=1e-5, atol=1e-7)
    # input gradient only: no parameter gradients touched
    network.zero_grad()
    only_input = mlp_backward(mlp, hidden, values, output_grad, parameters=False, input_columns=slice(None))
    assert all(p.grad is None for p in network.parameters())
    torch.testing.assert_close(only_input, leaf.grad, rtol=1e-5, atol=1e-7)


def _pair(cls, alpha, env_id="reengage/ContinuousSeek5-v0", **extra):
    """Two fast agents with the same parameters and batch: hand-written step and autograd step."""
    manual = _agent(cls, env_id, reengage_alpha=alpha, **extra)
    manual.learn(80)
    batch = manual.replay_buffer.sample(64)
    dones = batch.dones.clone()
    dones[::7] = 1.0
    batch = batch._replace(dones=dones)
    reference = _agent(cls, env_id, reengage_alpha=alpha, **extra)
    reference.policy.load_state_dict(manual.policy.state_dict())
    reference.set_logger(Logger(folder=None, output_formats=[]))
    reference.manual_update = False
    assert manual._manual_plan() is not None and reference._manual_plan() is None
    return manual, reference, batch


@pytest.mark.parametrize(
    "cls, alpha, extra",
    [
        (FastReenGAGEDDPG, 0.0, {}),
        (FastReenGAGEDDPG, 0.3, {}),
        (FastReenGAGETD3, 0.3, {}),
        (FastReenGAGEDDPG, 0.3, {"reengage_dim_weights": "bounds"}),
        (FastReenGAGEDDPG, 0.0, {"reengage_monitor": True}),
        (FastReenGAGEDDPG, 0.3, {"reengage_mode": "dense", "env_id": "reengage/ContinuousSeekDense-v0"}),
        (FastReenGAGETD3, 0.3, {"policy_kwargs": dict(net_arch=[24, 16, 20], share_features_extractor=False)}),
        (FastReenGAGETD3, 0.3, {"reengage_target_derivative": "partial"}),
        (FastReenGAGEDDPG, 0.3, {"reengage_matching": "one_sided"}),
        (FastReenGAGETD3, 0.3, {"reengage_matching": "one_sided", "reengage_dim_weights": "bounds"}),
    ],
)
def test_hand_written_step_equals_the_autograd_step(cls, alpha, extra):
    """Four gradient steps (TD3: two actor updates) on one batch: same parameters and logged losses."""
    extra = dict(extra)
    env_id = extra.pop("env_id", "reengage/ContinuousSeek5-v0")
    manual, reference, batch = _pair(cls, alpha, env_id, **extra)
    for step in range(4):
        for agent in (manual, reference):
            agent.replay_buffer.sample = lambda *args, **kwargs: batch
            torch.manual_seed(300 + step)  # TD3's target noise: the same draw on both
            agent.train(1, 64)
        for key, value in reference.logger.name_to_value.items():
            if key.startswith("train/") and key != "train/n_updates":
                assert manual.logger.name_to_value[key] == pytest.approx(value, rel=1e-5, abs=1e-8), key
    _assert_same_parameters(_policy_tensors(manual), _policy_tensors(reference))
    if alpha > 0 or extra.get("reengage_monitor"):
        assert manual.logger.name_to_value["train/reengage_loss"] > 0


def test_hand_written_term_is_the_reference_loss():
    """The residual form of the term equals reengage.losses on the same gradients (sparse and dense)."""
    agent = _agent(FastReenGAGEDDPG, reengage_alpha=0.2)
    agent.learn(80)
    batch = agent.replay_buffer.sample(64)
    generator = torch.Generator().manual_seed(9)
    grads = [torch.randn(64, 5, generator=generator) for _ in range(2)]
    target = torch.randn(64, 5, generator=generator)
    loss, residuals, mask = agent._manual_term(batch, grads, target, None)
    expected = sum(
        losses.sparse_goal_gradient_loss(g, target, batch.rewards, batch.dones, agent.gamma, agent.c_low) for g in grads
    )
    assert torch.equal(loss, expected)
    assert mask is not None and torch.equal(mask, losses.sparse_reward_mask(batch.rewards, agent.c_low))
    agent.reengage_mode = "dense"
    reward_grad = torch.randn(64, 5, generator=generator)
    loss, _, mask = agent._manual_term(batch, grads, target, reward_grad)
    expected = sum(losses.dense_goal_gradient_loss(g, reward_grad, target, batch.dones, agent.gamma) for g in grads)
    assert mask is None and torch.equal(loss, expected)
    # one-sided matching: the same rows dropped as reengage.losses drops
    agent.reengage_mode, agent.reengage_matching = "sparse", "one_sided"
    loss, _, _ = agent._manual_term(batch, grads, target, None)
    expected = sum(
        losses.sparse_goal_gradient_loss(
            g, target, batch.rewards, batch.dones, agent.gamma, agent.c_low, one_sided=True
        )
        for g in grads
    )
    full = sum(
        losses.sparse_goal_gradient_loss(g, target, batch.rewards, batch.dones, agent.gamma, agent.c_low) for g in grads
    )
    torch.testing.assert_close(loss, expected)
    assert loss < full


def test_other_networks_fall_back_to_autograd():
    agent = _agent(
        FastReenGAGEDDPG,
        reengage_alpha=0.2,
        policy_kwargs=dict(net_arch=[16, 16], activation_fn=nn.Tanh, share_features_extractor=False),
    )
    assert agent._manual_plan() is None
    agent.learn(100)  # trains on the autograd form
    assert agent._n_updates > 0


def test_same_seed_same_training_on_the_hand_written_step():
    runs = []
    for _ in range(2):
        agent = _agent(FastReenGAGETD3, reengage_alpha=0.2, seed=4)
        agent.learn(140)
        runs.append(_policy_tensors(agent))
    for name in runs[0]:
        assert torch.equal(runs[0][name], runs[1][name]), name


def test_partial_target_derivative_holds_the_target_action_on_the_fast_path():
    """reengage_target_derivative="partial": the fast path's target gradient is the mixin's (action held fixed)."""
    from test_fast_path import _filled_pair, _match_term_noise

    fast, reference, batch = _filled_pair(FastReenGAGETD3, 0.3, reengage_target_derivative="partial")
    torch.manual_seed(5)
    noise = (
        batch.actions.clone()
        .normal_(0, fast.target_policy_noise)
        .clamp(-fast.target_noise_clip, fast.target_noise_clip)
    )
    _match_term_noise(reference, noise)
    torch.manual_seed(5)
    _, term = fast.critic_loss(batch)
    assert term is not None
    torch.testing.assert_close(term.target_goal_grad, reference.target_goal_gradient(batch), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cls", [FastReenGAGEDDPG, FastReenGAGETD3])
def test_hand_written_step_on_a_flat_box_observation(cls):
    """MlpPolicy on a Box observation (FlattenExtractor): the same update as the autograd form."""
    import gymnasium as gym

    def make():
        return cls(
            "MlpPolicy",
            gym.make("Pendulum-v1"),
            reengage_alpha=0.0,
            learning_starts=50,
            batch_size=32,
            seed=0,
            policy_kwargs=dict(net_arch=[32, 32]),
        )

    manual = make()
    manual.learn(50)
    reference = make()
    reference.policy.load_state_dict(manual.policy.state_dict())
    reference.set_logger(Logger(folder=None, output_formats=[]))
    reference.manual_update = False
    assert manual._manual_plan() is not None and manual._manual_plan().keys is None
    batch = manual.replay_buffer.sample(32)
    for step in range(4):
        for agent in (manual, reference):
            agent.replay_buffer.sample = lambda *args, **kwargs: batch
            torch.manual_seed(step)
            agent.train(1, 32)
    _assert_same_parameters(_policy_tensors(manual), _policy_tensors(reference))


def test_hand_written_term_gradients_are_as_accurate_as_autograd_in_float32():
    """On the benchmark's 2x256 critic: float32 errors against a float64 double backward, both forms alike."""
    import copy

    network = _mlp([80, 256, 256, 1], seed=7)
    generator = torch.Generator().manual_seed(8)
    inputs = 3 * torch.randn(256, 80, generator=generator)
    output_grad = 1e-2 * torch.randn(256, 1, generator=generator)
    error = 1e-3 * torch.randn(256, 20, generator=generator)
    goal = slice(20, 40)

    def autograd_gradients(net, x, dq, e):
        leaf = x.clone().requires_grad_(True)
        q = net(leaf)
        (input_grad,) = torch.autograd.grad(q.sum(), leaf, create_graph=True)
        net.zero_grad()
        ((dq * q).sum() + (e * input_grad[:, goal]).sum()).backward()
        return _grads(net)

    reference = autograd_gradients(
        copy.deepcopy(network).double(), inputs.double(), output_grad.double(), error.double()
    )
    float32 = autograd_gradients(network, inputs, output_grad, error)
    mlp = ReluMLP.of(network)
    assert mlp is not None
    with torch.no_grad():
        network.zero_grad()
        _, hidden = relu_mlp_forward(mlp, inputs)
        value_head_backward(mlp, hidden, value_pre_activation_gradients(mlp, hidden), output_grad, error, goal)
    for want, autograd_grad, manual_grad in zip(reference, float32, _grads(network)):
        scale = float(want.abs().max())
        autograd_error = float((autograd_grad.double() - want).abs().max()) / scale
        manual_error = float((manual_grad.double() - want).abs().max()) / scale
        assert manual_error < 2e-6 and manual_error < 4 * max(autograd_error, 1e-7), (manual_error, autograd_error)
