"""Goal-gradient diagnostics: exact values of the pure function, and a hook that leaves training unchanged."""

import math

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from reengage.agents import ReenGAGEDDPG, ReenGAGETD3
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.logger import Logger

from agents.diagnostics import goal_gradient_diagnostics, parameter_gradient_ratio, sparse_return_range


def test_diagnostics_values_on_hand_computed_vectors():
    q_grads = torch.tensor([[3.0, 4.0], [1.0, 0.0], [0.0, 2.0]])
    target = torch.tensor([[3.0, 4.0], [0.0, 1.0], [0.0, 1.0]])
    q_values = torch.tensor([[-1.0], [-25.0], [0.5]])
    mask = torch.tensor([[1.0], [1.0], [0.0]])
    out = goal_gradient_diagnostics(q_grads, target, q_values, mask, return_range=(-20.0, 0.0))
    assert out["grad_norm_critic"] == pytest.approx((5 + 1 + 2) / 3)
    assert out["grad_norm_target"] == pytest.approx((5 + 1 + 1) / 3)
    # matched rows only: cosines 1 and 0; the masked third row (cosine 1) must not count
    assert out["grad_cosine"] == pytest.approx(0.5)
    assert out["masked_fraction"] == pytest.approx(1 / 3)
    # error energy of matched rows 0 + 2, target energy 25 + 1
    assert out["grad_relative_error"] == pytest.approx(2 / 26)
    assert (out["q_min"], out["q_max"]) == (-25.0, 0.5)
    assert out["q_outside_return_range"] == pytest.approx(2 / 3)


def test_action_and_actor_direction_keys():
    q_goal = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    action_grads = torch.tensor([[-2.0, 0.0], [1.0, 0.0]])  # row 0 exactly -grad_g, row 1 orthogonal
    directions = torch.tensor([[-1.0, 0.0], [-1.0, 0.0]])
    out = goal_gradient_diagnostics(
        q_goal,
        q_goal,
        torch.zeros(2),
        torch.ones(2),
        action_grads=action_grads,
        goal_directions=directions,
        policy_actions=torch.tensor([[0.5, -0.5], [0.5, 0.5]]),
        actor_goal_directions=torch.tensor([[1.0, -1.0], [-1.0, -1.0]]),
    )
    assert out["action_grad_goal_grad_cosine"] == pytest.approx(0.5)
    assert out["action_grad_goal_direction_cosine"] == pytest.approx(0.0)
    assert out["actor_goal_cosine"] == pytest.approx(0.0)  # +1 and -1
    assert out["actor_goal_sign_agreement"] == pytest.approx(0.5)
    assert "q_outside_return_range" not in out


def test_all_masked_batch_gives_nan_cosine_not_a_crash():
    grads = torch.ones(4, 3)
    out = goal_gradient_diagnostics(grads, grads, torch.zeros(4), torch.zeros(4))
    assert math.isnan(out["grad_cosine"]) and out["masked_fraction"] == 1.0


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        goal_gradient_diagnostics(torch.ones(2, 3), torch.ones(2, 4), torch.zeros(2), torch.ones(2))


def test_sparse_return_range_and_parameter_ratio():
    assert sparse_return_range(-1.0, 0.95) == pytest.approx((-20.0, 0.0))
    with pytest.raises(ValueError, match="gamma"):
        sparse_return_range(-1.0, 1.0)
    before = [torch.tensor([3.0, 0.0]), None]
    after = [torch.tensor([3.0, 4.0]), torch.tensor([0.0])]
    out = parameter_gradient_ratio(before, after)
    assert out["param_grad_norm_td"] == pytest.approx(3.0)
    assert out["param_grad_norm_term"] == pytest.approx(4.0)
    assert out["param_grad_ratio_term_to_td"] == pytest.approx(4 / 3)


class _RecordingLogger(Logger):
    def __init__(self):
        super().__init__(folder=None, output_formats=[])
        self.seen: set[str] = set()

    def record_mean(self, key, value, exclude=None):
        self.seen.add(key)
        super().record_mean(key, value, exclude)


def _train(alpha, every, steps=70, cls=ReenGAGEDDPG, **kwargs):
    env = gym.make("reengage/ContinuousSeek-v0", d=3, box=3.0)
    agent = cls(
        "MultiInputPolicy",
        env,
        reengage_alpha=alpha,
        reengage_diagnostics_every=every,
        replay_buffer_class=HerReplayBuffer,
        learning_starts=40,
        batch_size=16,
        seed=0,
        policy_kwargs=dict(net_arch=[16, 16], share_features_extractor=False),
        **kwargs,
    )
    logger = _RecordingLogger()
    agent.set_logger(logger)
    agent.learn(steps)
    return agent, logger


@pytest.mark.parametrize("alpha", [0.0, 0.2])
def test_diagnostics_leave_training_unchanged(alpha):
    """Same seed with and without diagnostics at every step: bit-identical networks, and the keys are logged."""
    plain, plain_log = _train(alpha, every=0)
    watched, watched_log = _train(alpha, every=1)
    for a, b in zip(plain.policy.parameters(), watched.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not any(k.startswith("reengage_diag/") for k in plain_log.seen)
    expected = {
        "grad_cosine",
        "param_grad_ratio_term_to_td",
        "actor_goal_cosine",
        "q_outside_return_range",
        "grad_norm_target_partial",
        "action_grad_goal_grad_cosine",
    }
    assert {f"reengage_diag/{k}" for k in expected} <= watched_log.seen


def test_bad_diagnostics_interval_is_refused():
    with pytest.raises(ValueError, match="reengage_diagnostics_every"):
        _train(0.2, every=-1, steps=1)


def test_partial_target_derivative_holds_the_target_action():
    """'partial' drops the path through pi'(s', g): the result equals grad_g Q'(s', a'_fixed, g)."""
    agent, _ = _train(0.2, every=0, steps=60, cls=ReenGAGETD3, reengage_target_derivative="partial")
    batch = agent.replay_buffer.sample(8)
    goal = batch.next_observations["desired_goal"].clone().requires_grad_(True)
    with torch.no_grad():
        fixed_action = agent.actor_target(batch.next_observations)
    obs = {**batch.next_observations, "desired_goal": goal}
    agent.target_policy_noise = 0.0  # TD3's smoothing noise off, so the held action is exactly pi'(s', g)
    partial = agent.target_goal_gradient(batch, {})
    q = torch.cat(agent.critic_target(obs, fixed_action), dim=1).min(dim=1, keepdim=True).values
    (expected,) = torch.autograd.grad(q.sum(), goal)
    assert torch.allclose(partial, expected, atol=1e-6)
    agent.reengage_hold_target_action = False
    total = agent.target_goal_gradient(batch, {})
    assert not torch.allclose(total, expected, atol=1e-6)


def test_unknown_target_derivative_is_refused():
    with pytest.raises(ValueError, match="total"):
        _train(0.2, every=0, steps=1, reengage_target_derivative="full")


def test_bounds_weights_make_the_term_invariant_to_the_goal_scale():
    """A goal space scaled by c: gradients scale by 1/c, the MSE by 1/c^2, the 'bounds' weights by c^2."""
    from gymnasium import spaces

    from agents.goal_gradient import bounds_goal_weights

    small = spaces.Box(-3.0, 3.0, shape=(4,))
    large = spaces.Box(-15.0, 15.0, shape=(4,))
    assert torch.allclose(bounds_goal_weights(small), torch.full((4,), 3.0))
    rng = torch.Generator().manual_seed(0)
    q_grad, target = torch.randn(8, 4, generator=rng), torch.randn(8, 4, generator=rng)
    rewards, dones = -torch.ones(8, 1), torch.zeros(8, 1)
    from reengage import losses

    loss_small = losses.sparse_goal_gradient_loss(
        q_grad, target, rewards, dones, 0.95, dim_weights=bounds_goal_weights(small)
    )
    loss_large = losses.sparse_goal_gradient_loss(
        q_grad / 5, target / 5, rewards, dones, 0.95, dim_weights=bounds_goal_weights(large)
    )
    assert loss_large.item() == pytest.approx(loss_small.item(), rel=1e-5)
    with pytest.raises(ValueError, match="finite bounds"):
        bounds_goal_weights(spaces.Box(-np.inf, np.inf, shape=(2,)))


def test_bounds_weights_reach_the_agent():
    agent, _ = _train(0.2, every=0, steps=1, reengage_dim_weights="bounds")
    assert torch.allclose(agent._dim_weights(3), torch.full((3,), 3.0))


@pytest.mark.parametrize("path", ["sb3", "fast"])
def test_diagnostics_run_on_discrete_actions(path):
    """DQN (SB3 path and fast path): no action gradient and no actor keys, but the goal-gradient keys are logged."""
    from reengage.agents import ReenGAGEDQN
    from reengage.agents.fast import FastReenGAGEDQN
    from reengage.envs import BitFlippingEnv

    cls = ReenGAGEDQN if path == "sb3" else FastReenGAGEDQN
    agent = cls(
        "MultiInputPolicy",
        BitFlippingEnv(n_bits=4),
        reengage_alpha=0.5,
        reengage_diagnostics_every=1,
        replay_buffer_class=HerReplayBuffer,
        learning_starts=30,
        batch_size=16,
        seed=0,
        policy_kwargs=dict(net_arch=[16]),
    )
    logger = _RecordingLogger()
    agent.set_logger(logger)
    agent.learn(60)
    assert "reengage_diag/grad_cosine" in logger.seen and "reengage_diag/q_outside_return_range" in logger.seen
    assert "reengage_diag/actor_goal_cosine" not in logger.seen


@pytest.mark.parametrize(
    "cls_name, alpha",
    [("FastReenGAGEDDPG", 0.0), ("FastReenGAGEDDPG", 0.2), ("FastReenGAGETD3", 0.2), ("FastReenGAGESAC", 0.2)],
)
def test_fast_path_logs_the_diagnostics_and_trains_unchanged(cls_name, alpha):
    """The fast path (hand-written step for DDPG/TD3, autograd for SAC) logs the same keys, bar the
    TD/term parameter-gradient split, and a run with diagnostics is bit-identical to one without."""
    from reengage.agents import fast as fast_train

    cls = getattr(fast_train, cls_name)
    plain, plain_log = _train(alpha, every=0, cls=cls)
    watched, watched_log = _train(alpha, every=1, cls=cls)
    for a, b in zip(plain.policy.parameters(), watched.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not any(k.startswith("reengage_diag/") for k in plain_log.seen)
    expected = {
        "grad_cosine",
        "actor_goal_cosine",
        "q_outside_return_range",
        "grad_norm_target",
        "action_grad_goal_grad_cosine",
    }
    assert {f"reengage_diag/{k}" for k in expected} <= watched_log.seen
    assert "reengage_diag/param_grad_ratio_term_to_td" not in watched_log.seen


def test_diagnostics_module_does_not_import_the_agent_module():
    """agents.goal_gradient imports the diagnostics; the diagnostics read an agent through its methods only."""
    import ast
    from pathlib import Path

    import agents.diagnostics

    tree = ast.parse(Path(agents.diagnostics.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "goal_gradient" not in imported and all("goal_gradient" not in (name or "") for name in imported)
