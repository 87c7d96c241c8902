"""Eq. G.9 soft target: its limit tau -> 0 and its goal gradient (finite differences), standalone and in ReenGAGEDQN."""

from __future__ import annotations

import pytest
import torch
from reengage.agents import ReenGAGEDQN
from reengage.agents.goal_gradient import with_leaf
from reengage.envs import BitFlippingEnv

from reengage.losses import soft_max_target


def _q_network(goal_dim: int, n_actions: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(goal_dim, 32), torch.nn.Tanh(), torch.nn.Linear(32, n_actions)).double()


def test_soft_target_tends_to_max():
    torch.manual_seed(0)
    q = torch.randn(64, 7, dtype=torch.float64)
    hard = q.max(dim=1, keepdim=True).values
    assert torch.equal(soft_max_target(q, 0.0), hard)
    gaps = [float((hard - soft_max_target(q, tau)).abs().max()) for tau in (1.0, 0.1, 0.01, 0.001)]
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:]))
    assert gaps[-1] < 1e-8
    # the soft maximum never exceeds the max and tends to the mean for large tau
    assert torch.all(soft_max_target(q, 0.5) <= hard + 1e-12)
    torch.testing.assert_close(soft_max_target(q, 1e6), q.mean(dim=1, keepdim=True), rtol=0, atol=1e-5)


def test_soft_target_rejects_negative_tau():
    with pytest.raises(ValueError, match="tau"):
        soft_max_target(torch.zeros(2, 3), -0.1)


@pytest.mark.parametrize("tau", [0.05, 0.5, 1.0])
def test_soft_target_goal_gradient_matches_finite_differences(tau):
    net = _q_network(goal_dim=5, n_actions=4)
    goal = torch.rand(3, 5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(soft_max_target(net(goal), tau).sum(), goal)
    eps = 1e-6
    numeric = torch.zeros_like(goal)
    with torch.no_grad():
        for i in range(goal.shape[1]):
            step = torch.zeros_like(goal)
            step[:, i] = eps
            numeric[:, i] = (soft_max_target(net(goal + step), tau) - soft_max_target(net(goal - step), tau)).squeeze(1)
    torch.testing.assert_close(grad, numeric / (2 * eps), rtol=1e-6, atol=1e-8)


def test_hard_max_gradient_is_the_maximising_actions_gradient():
    net = _q_network(goal_dim=4, n_actions=6, seed=1)
    goal = torch.rand(8, 4, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(soft_max_target(net(goal), 0.0).sum(), goal)
    best = net(goal).argmax(dim=1, keepdim=True)
    (expected,) = torch.autograd.grad(net(goal).gather(1, best).sum(), goal)
    torch.testing.assert_close(grad, expected)
    # and a small temperature gives nearly the same gradient (tau -> 0 continuity away from ties)
    (soft_grad,) = torch.autograd.grad(soft_max_target(net(goal), 1e-4).sum(), goal)
    torch.testing.assert_close(soft_grad, expected, rtol=1e-4, atol=1e-6)


def test_agent_target_goal_gradient_matches_finite_differences():
    """ReenGAGEDQN's target value, differentiated in the float relaxation of the MultiBinary goal."""
    env = BitFlippingEnv(n_bits=6)
    model = ReenGAGEDQN(
        "MultiInputPolicy",
        env,
        policy_kwargs={"net_arch": [32]},
        reengage_tau=0.5,
        learning_starts=0,
        seed=0,
        device="cpu",
    )
    obs, _ = env.reset(seed=0)
    obs_tensor, _ = model.policy.obs_to_tensor(obs)
    assert obs_tensor["desired_goal"].dtype == torch.int8  # MultiBinary arrives as integers
    leaf_obs, goal = with_leaf(obs_tensor, "desired_goal")
    assert goal.dtype == torch.float32 and goal.requires_grad
    (grad,) = torch.autograd.grad(model._target_value(leaf_obs, None, {}).sum(), goal)
    eps = 1e-2  # the network is float32; a wide step keeps rounding small next to the difference
    numeric = torch.zeros_like(goal)
    with torch.no_grad():
        for i in range(goal.shape[1]):
            step = torch.zeros_like(goal)
            step[:, i] = eps
            plus = model._target_value({**leaf_obs, "desired_goal": goal + step}, None, {})
            minus = model._target_value({**leaf_obs, "desired_goal": goal - step}, None, {})
            numeric[:, i] = ((plus - minus) / (2 * eps)).squeeze(1)
    assert float(grad.abs().max()) > 1e-4  # the goal does move the target
    torch.testing.assert_close(grad, numeric, rtol=2e-2, atol=2e-4)
