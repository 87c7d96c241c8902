"""App. G.1 identities, numerically: the closed-form model, its losses and its policy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reengage.envs import TheoryDenseEnv, TheorySparseEnv

from reengage import losses, theory
from reengage.theory import (
    TheoryModel,
    goal_gradient_loss,
    haar_rotation,
    reengage_loss,
    sample_transitions,
    td_loss,
)

GAMMA = 0.9
D = 5


def _setup(kind: str, n: int = 12, seed: int = 0):
    env = (TheoryDenseEnv if kind == "dense" else TheorySparseEnv)(d=D, rotation_seed=seed)
    batch = sample_transitions(env, n, seed=seed)
    generator = torch.Generator().manual_seed(seed + 100)
    model = TheoryModel(kind, haar_rotation(D, generator), GAMMA)
    with torch.no_grad():  # move off the base so the exponential map is exercised
        model.estimate.generator.normal_(generator=generator)
    other_target = haar_rotation(D, generator)
    return env, batch, model, torch.as_tensor(env.U), other_target


def _acting(kind: str, batch) -> torch.Tensor:
    if kind == "dense":
        return torch.ones(len(batch), dtype=torch.bool)
    return (batch.states[:, :D] != 0).any(dim=-1)


def _factor(kind: str) -> float:
    return 1.0 / (1.0 - GAMMA) ** 2 if kind == "dense" else GAMMA**2 / (1.0 - GAMMA**2) ** 2


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("use_other_target", [False, True])
def test_td_loss_per_tuple_is_the_bilinear_residual(kind, use_other_target):
    """(Q - y)^2 = factor * (g.U~a - g.Ua)^2, whatever the target rotation (it cancels)."""
    _, batch, model, truth, other = _setup(kind)
    per_tuple = td_loss(model, batch, target_rotation=other if use_other_target else None, reduction="none")
    u_est = model.rotation().detach()
    residual = ((batch.goals @ u_est) * batch.actions).sum(-1) - ((batch.goals @ truth) * batch.actions).sum(-1)
    expected = torch.where(_acting(kind, batch), _factor(kind) * residual**2, torch.zeros_like(residual))
    torch.testing.assert_close(per_tuple.detach(), expected, rtol=1e-9, atol=1e-12)
    assert expected.abs().max() > 1e-3  # a wrong U~ is visible


@pytest.mark.parametrize("kind", ["dense", "sparse"])
@pytest.mark.parametrize("use_other_target", [False, True])
def test_goal_gradient_loss_per_tuple_is_the_vector_residual(kind, use_other_target):
    """Toolkit loss of one tuple = factor * ||U~a - Ua||^2 / d (the 1/d: mean over goal dims)."""
    _, batch, model, truth, other = _setup(kind)
    u_est = model.rotation().detach()
    acting = _acting(kind, batch)
    for i in range(len(batch)):
        row = batch.subset(slice(i, i + 1))
        value = goal_gradient_loss(model, row, target_rotation=other if use_other_target else None)
        a = batch.actions[i]
        expected = _factor(kind) * float(((u_est - truth) @ a).square().sum()) / D if acting[i] else 0.0
        assert float(value.detach()) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    # on the whole batch the toolkit's mean counts masked rows: the mean of the per-tuple values
    whole = goal_gradient_loss(model, batch)
    per = [float(goal_gradient_loss(model, batch.subset(slice(i, i + 1))).detach()) for i in range(len(batch))]
    assert float(whole.detach()) == pytest.approx(np.mean(per), rel=1e-9)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_losses_vanish_at_the_true_rotation_only(kind):
    _, batch, model, truth, _ = _setup(kind)
    exact = TheoryModel(kind, truth, GAMMA)
    assert float(td_loss(exact, batch).detach()) < 1e-24
    assert float(goal_gradient_loss(exact, batch).detach()) < 1e-24
    assert float(reengage_loss(model, batch).detach()) > 1e-2


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_goal_gradient_loss_goes_through_the_toolkit(kind, monkeypatch):
    """The ReenGAGE term is computed by reengage.losses (Eq. 8.8 / 8.9), not a private copy."""
    name = "dense_goal_gradient_loss" if kind == "dense" else "sparse_goal_gradient_loss"
    calls = []
    original = getattr(losses, name)

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(losses, name, spy)
    _, batch, model, _, _ = _setup(kind)
    value = goal_gradient_loss(model, batch)
    assert len(calls) == 1
    if kind == "sparse":
        assert calls[0]["c_low"] == 0.0
    # the loss reaches U~ through grad_g Q (create_graph=True): it has a gradient in the parameters
    (grad,) = torch.autograd.grad(value, model.estimate.generator)
    assert grad.abs().max() > 0


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_closed_form_q_is_the_discounted_return_of_the_optimal_policy(kind):
    """Eq. G.1 / G.3 constants: roll the true dynamics under pi* and sum gamma^t R(s_{t+1}, g)."""
    env = (TheoryDenseEnv if kind == "dense" else TheorySparseEnv)(d=3, rotation_seed=4)
    rng = np.random.default_rng(0)
    g = rng.uniform(-1, 1, 3)
    a0 = project_to_ball(rng.uniform(-1, 1, 3))
    s = rng.uniform(-1, 1, 3) if kind == "dense" else np.r_[rng.uniform(-1, 1, 3), np.zeros(3)]
    model = TheoryModel(kind, torch.as_tensor(env.U), GAMMA)
    t = lambda x: torch.as_tensor(x, dtype=torch.float64)[None]  # noqa: E731
    q = float(model.q(t(s), t(a0), t(g)).detach())
    pi = model.policy(t(g))[0].detach().numpy()
    state, action, ret = s, a0, 0.0
    for step in range(600):
        state = env.dynamics(state, action)
        ret += GAMMA**step * float(g @ state[:3])
        action = pi
    assert q == pytest.approx(ret, rel=1e-9)


def project_to_ball(a):
    return a / max(1.0, float(np.linalg.norm(a)))


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_optimal_policy_maximises_the_closed_form_q(kind):
    """Eq. G.2 / G.4: no feasible action beats pi(g) = U~^T g / ||g||, and ascent finds it."""
    _, batch, model, _, _ = _setup(kind, n=8)
    states = batch.states[::2]  # acting-phase rows for the sparse class
    goals = batch.goals[::2]
    with torch.no_grad():
        best = model.q(states, model.policy(goals), goals)
        generator = torch.Generator().manual_seed(3)
        for _ in range(20):
            a = torch.randn(len(goals), D, generator=generator, dtype=torch.float64)
            a = a / a.norm(dim=-1, keepdim=True) * torch.rand(len(goals), 1, generator=generator, dtype=torch.float64)
            assert torch.all(model.q(states, a, goals) <= best + 1e-12)
    # projected gradient ascent on Q over the unit ball converges to the closed form
    a = torch.zeros(len(goals), D, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.SGD([a], lr=0.05)
    for _ in range(300):
        optimiser.zero_grad()
        (-model.q(states, a, goals).sum()).backward()
        optimiser.step()
        with torch.no_grad():
            a /= a.norm(dim=-1, keepdim=True).clamp_min(1.0)
    torch.testing.assert_close(a.detach(), model.policy(goals).detach(), atol=1e-6, rtol=0)


def test_sparse_q_ignores_the_action_in_the_revealing_phase():
    _, batch, model, _, _ = _setup("sparse", n=6)
    waiting = batch.subset(slice(1, None, 2))
    q1 = model.q(waiting.states, waiting.actions, waiting.goals)
    q2 = model.q(waiting.states, -waiting.actions, waiting.goals)
    torch.testing.assert_close(q1, q2)


def test_orthogonal_estimate_is_a_rotation_and_rebase_keeps_it():
    generator = torch.Generator().manual_seed(1)
    model = TheoryModel("dense", haar_rotation(6, generator), GAMMA)
    with torch.no_grad():
        model.estimate.generator.normal_(generator=generator)
    u = model.rotation().detach()
    torch.testing.assert_close(u @ u.T, torch.eye(6, dtype=torch.float64))
    assert float(torch.linalg.det(u)) == pytest.approx(1.0)
    model.estimate.rebase()
    torch.testing.assert_close(model.rotation().detach(), u)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_second_order_chart_matches_exponential_to_second_order(kind):
    _, batch, model, _, _ = _setup(kind, n=15)
    model.estimate.rebase()
    theta = torch.zeros_like(model.estimate.generator, requires_grad=True)

    def loss_exp(th):
        k = torch.zeros(D, D, dtype=torch.float64).index_put((model.estimate._rows, model.estimate._cols), th)
        with model.evaluated_at(model.estimate.base @ torch.linalg.matrix_exp(k - k.T)):
            return reengage_loss(model, batch)

    def loss_chart(th):
        with model.evaluated_at(model.estimate.second_order_chart(th)):
            return reengage_loss(model, batch)

    h_exp = torch.autograd.functional.hessian(loss_exp, theta)
    h_chart = torch.autograd.functional.hessian(loss_chart, theta)
    torch.testing.assert_close(h_exp, h_chart, rtol=1e-8, atol=1e-8)
    (g_exp,) = torch.autograd.grad(loss_exp(theta), theta)
    (g_chart,) = torch.autograd.grad(loss_chart(theta), theta)
    torch.testing.assert_close(g_exp, g_chart)


def test_bad_arguments_raise():
    base = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="kind"):
        TheoryModel("medium", base)
    with pytest.raises(ValueError, match="gamma"):
        TheoryModel("dense", base, gamma=1.0)
    _, batch, model, _, _ = _setup("dense", n=4)
    with pytest.raises(ValueError, match="loss"):
        theory.fit_rotation("dense", batch, "huber")
    with pytest.raises(ValueError, match="reduction"):
        td_loss(model, batch, reduction="sum")
    with pytest.raises(ValueError, match="alpha"):
        reengage_loss(model, batch, alpha=0.0)
