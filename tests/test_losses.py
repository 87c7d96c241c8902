"""The pure losses of reengage.losses against hand computations and finite differences."""

import numpy as np
import pytest
import torch

from reengage import losses

GAMMA = 0.95


def _batch(seed=0, batch=6, dim=3):
    generator = torch.Generator().manual_seed(seed)
    q_grad = torch.randn(batch, dim, generator=generator)
    next_grad = torch.randn(batch, dim, generator=generator)
    rewards = torch.tensor([-1.0, 0.0, -1.0, -1.0, 0.0, -1.0])[:batch].unsqueeze(1)
    dones = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0])[:batch].unsqueeze(1)
    return q_grad, next_grad, rewards, dones


def test_sparse_loss_matches_hand_computation():
    q_grad, next_grad, rewards, dones = _batch()
    loss = losses.sparse_goal_gradient_loss(q_grad, next_grad, rewards, dones, GAMMA)
    expected = 0.0
    for i in range(q_grad.shape[0]):
        if rewards[i, 0] == -1.0:
            target = GAMMA * (1 - dones[i, 0]) * next_grad[i]
            expected += float(((q_grad[i] - target) ** 2).sum())
    # mean over batch x goal dimensions, masked rows still counted
    expected /= q_grad.numel()
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_sparse_loss_ignores_transitions_at_the_high_reward():
    q_grad, next_grad, rewards, dones = _batch()
    base = losses.sparse_goal_gradient_loss(q_grad, next_grad, rewards, dones, GAMMA)
    high = (rewards != -1.0).squeeze(1)
    q_changed, next_changed = q_grad.clone(), next_grad.clone()
    q_changed[high] = 1e3
    next_changed[high] = -1e3
    changed = losses.sparse_goal_gradient_loss(q_changed, next_changed, rewards, dones, GAMMA)
    assert changed.item() == pytest.approx(base.item(), rel=1e-7)
    # and changing a matched row does change it (the check above can fail)
    q_changed[0] += 1.0
    assert losses.sparse_goal_gradient_loss(q_changed, next_grad, rewards, dones, GAMMA).item() != pytest.approx(
        base.item()
    )


def test_terminal_transitions_have_no_bootstrapped_gradient():
    q_grad, next_grad, rewards, dones = _batch()
    only_terminal = (dones.squeeze(1) == 1) & (rewards.squeeze(1) == -1)
    index = int(torch.nonzero(only_terminal)[0])
    a = losses.sparse_goal_gradient_loss(q_grad, next_grad, rewards, dones, GAMMA)
    next_changed = next_grad.clone()
    next_changed[index] += 100.0
    b = losses.sparse_goal_gradient_loss(q_grad, next_changed, rewards, dones, GAMMA)
    assert a.item() == pytest.approx(b.item(), rel=1e-7)


def test_c_low_selects_the_masked_reward():
    q_grad, next_grad, rewards, dones = _batch()
    shifted = rewards + 1.0  # sparse reward in {0, 1}: the low value is now 0
    a = losses.sparse_goal_gradient_loss(q_grad, next_grad, rewards, dones, GAMMA, c_low=-1.0)
    b = losses.sparse_goal_gradient_loss(q_grad, next_grad, shifted, dones, GAMMA, c_low=0.0)
    assert a.item() == pytest.approx(b.item(), rel=1e-7)


def test_dense_loss_adds_the_reward_gradient_and_masks_nothing():
    q_grad, next_grad, _, dones = _batch()
    reward_grad = torch.randn_like(q_grad)
    loss = losses.dense_goal_gradient_loss(q_grad, reward_grad, next_grad, dones, GAMMA)
    target = reward_grad + GAMMA * (1 - dones) * next_grad
    assert loss.item() == pytest.approx(float(((q_grad - target) ** 2).mean()), rel=1e-6)
    zero = losses.dense_goal_gradient_loss(q_grad, torch.zeros_like(reward_grad), next_grad, dones, GAMMA)
    assert zero.item() != pytest.approx(loss.item())


def test_dim_weights_weight_each_goal_dimension():
    q_grad, next_grad, rewards, dones = _batch()
    weights = torch.tensor([1.0, 4.0, 0.25])
    weighted = losses.sparse_goal_gradient_loss(q_grad, next_grad, rewards, dones, GAMMA, dim_weights=weights)
    mask = (rewards == -1).float()
    error = (mask * (q_grad - GAMMA * (1 - dones) * next_grad)) ** 2
    assert weighted.item() == pytest.approx(float((error * weights).mean()), rel=1e-6)
    assert torch.allclose(losses.normalised_goal_weights(torch.tensor([0.5, 2.0])), torch.tensor([0.25, 4.0]))
    with pytest.raises(ValueError, match="positive"):
        losses.normalised_goal_weights(torch.tensor([0.0, 1.0]))


def test_target_is_a_label_not_a_gradient_path():
    q_grad, next_grad, rewards, dones = _batch()
    q_grad.requires_grad_(True)
    next_grad.requires_grad_(True)
    losses.sparse_goal_gradient_loss(q_grad, next_grad, rewards, dones, GAMMA).backward()
    assert q_grad.grad is not None and q_grad.grad.abs().sum() > 0
    assert next_grad.grad is None


def test_shape_errors_name_the_shapes():
    q_grad, next_grad, rewards, dones = _batch()
    with pytest.raises(ValueError, match="differ in shape"):
        losses.goal_gradient_mse(q_grad, next_grad[:, :2])
    with pytest.raises(ValueError, match="per-transition column"):
        losses.sparse_goal_gradient_loss(q_grad, next_grad, rewards[:3], dones, GAMMA)


def test_soft_max_target_tends_to_max_and_has_finite_difference_gradient():
    q = torch.tensor([[1.0, 2.0, 3.5], [0.3, -1.0, 0.2]], dtype=torch.float64)
    hard = losses.soft_max_target(q, 0.0)
    assert torch.equal(hard, torch.tensor([[3.5], [0.3]], dtype=torch.float64))
    gaps = [float((hard - losses.soft_max_target(q, tau)).abs().max()) for tau in (1.0, 0.1, 0.01)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3
    # gradient in the Q-values against central differences
    tau = 0.5
    q_leaf = q.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(losses.soft_max_target(q_leaf, tau).sum(), q_leaf)
    step = 1e-6
    numeric = torch.zeros_like(q)
    for i in range(q.shape[0]):
        for j in range(q.shape[1]):
            plus, minus = q.clone(), q.clone()
            plus[i, j] += step
            minus[i, j] -= step
            numeric[i, j] = (losses.soft_max_target(plus, tau).sum() - losses.soft_max_target(minus, tau).sum()) / (
                2 * step
            )
    assert torch.allclose(grad, numeric, atol=1e-7)
    with pytest.raises(ValueError, match="tau"):
        losses.soft_max_target(q, -0.1)


def test_gate_loss_uses_twice_the_item_reward():
    generator = torch.Generator().manual_seed(1)
    q_grad = torch.randn(4, 5, generator=generator)
    next_grad = torch.randn(4, 5, generator=generator)
    items = (torch.rand(4, 5, generator=generator) > 0.7).float()
    dones = torch.zeros(4, 1)
    loss = losses.gate_gradient_loss(q_grad, items, next_grad, dones, GAMMA)
    expected = ((q_grad - (2 * items + GAMMA * next_grad)) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert np.isfinite(loss.item())


# ---------------------------------------------------------------- one-sided matching (toolkit option)
def test_one_sided_sparse_loss_matches_rows_weaker_than_their_target_only():
    # row 0: critic weaker than target (matched); row 1: stronger (dropped); row 2: weaker but reward 0 (masked)
    q = torch.tensor([[0.1, 0.0], [3.0, 0.0], [0.0, 0.1]], requires_grad=True)
    next_grad = torch.tensor([[1.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    rewards = torch.tensor([-1.0, -1.0, 0.0])
    dones = torch.zeros(3)
    gamma = 0.5
    loss = losses.sparse_goal_gradient_loss(q, next_grad, rewards, dones, gamma, one_sided=True)
    # by hand: only row 0, target 0.5 * (1, 1); mean over 3 rows x 2 dims
    expected = ((0.1 - 0.5) ** 2 + (0.0 - 0.5) ** 2) / 6
    assert loss.item() == pytest.approx(expected)
    (grad,) = torch.autograd.grad(loss, q)
    assert torch.all(grad[1:] == 0) and torch.all(grad[0] != 0)
    full = losses.sparse_goal_gradient_loss(q, next_grad, rewards, dones, gamma)
    assert full.item() > loss.item()  # row 1 counts in the full loss


def test_one_sided_rows_use_the_weighted_norm_of_the_loss():
    q = torch.tensor([[1.0, 0.0]])
    target = torch.tensor([[0.0, 0.9]])
    assert losses.weaker_than_target_rows(q, target).item() == 0.0  # 1 > 0.81
    weights = torch.tensor([0.5, 1.0])
    assert losses.weaker_than_target_rows(q, target, weights).item() == 1.0  # 0.5 < 0.81


def test_one_sided_dense_loss_drops_rows_stronger_than_their_target():
    q = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    reward_grad = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    loss = losses.dense_goal_gradient_loss(q, reward_grad, torch.zeros(2, 2), torch.zeros(2), 0.9, one_sided=True)
    assert loss.item() == pytest.approx(1.0 / 4)  # row 1 only: (0 - 1)^2 over 2 rows x 2 dims


# ---------------------------------------------------------------- residuals: the one definition of the term
def test_residuals_take_the_sparse_or_the_dense_case_not_both():
    q_grad, next_grad, rewards, dones = _batch()
    with pytest.raises(ValueError, match="not both"):
        losses.goal_gradient_residuals([q_grad], next_grad, dones, GAMMA)
    with pytest.raises(ValueError, match="not both"):
        losses.goal_gradient_residuals(
            [q_grad], next_grad, dones, GAMMA, rewards=rewards, reward_goal_grad=torch.zeros_like(next_grad)
        )
    with pytest.raises(ValueError, match="differ in shape"):
        losses.goal_gradient_residuals([q_grad[:, :2]], next_grad, dones, GAMMA, rewards=rewards)


def test_residuals_by_hand_with_two_heads_and_one_sided_matching():
    # head 0 is weaker than the target on both rows, head 1 stronger on row 0; row 1's reward is high (masked)
    heads = [torch.tensor([[0.1, 0.0], [0.0, 0.1]]), torch.tensor([[3.0, 0.0], [0.0, 0.0]])]
    next_grad = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    rewards, dones = torch.tensor([-1.0, 0.0]), torch.zeros(2)
    term = losses.goal_gradient_residuals(heads, next_grad, dones, 0.5, rewards=rewards, one_sided=True)
    target = 0.5 * next_grad
    assert torch.equal(term.target, target)
    torch.testing.assert_close(term.residuals[0], torch.tensor([[0.1 - 0.5, -0.5], [0.0, 0.0]]))
    assert torch.equal(term.residuals[1], torch.zeros(2, 2))  # row 0 dropped by the one-sided rule, row 1 masked
    assert torch.equal(term.matched, torch.tensor([[0.5], [0.0]]))  # row 0: one head of two; row 1: masked
    expected = ((0.1 - 0.5) ** 2 + 0.5**2) / 4
    assert losses.goal_gradient_loss(term).item() == pytest.approx(expected)
    full = losses.goal_gradient_residuals(heads, next_grad, dones, 0.5, rewards=rewards)
    assert torch.equal(full.matched, torch.tensor([[1.0], [0.0]]))


def test_dense_residuals_match_every_row_unless_one_sided():
    q_grad = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    reward_grad = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    dones = torch.zeros(2)
    full = losses.goal_gradient_residuals([q_grad], torch.zeros(2, 2), dones, 0.9, reward_goal_grad=reward_grad)
    assert full.matched is None and torch.equal(full.residuals[0], q_grad - reward_grad)
    one_sided = losses.goal_gradient_residuals(
        [q_grad], torch.zeros(2, 2), torch.zeros(2), 0.9, reward_goal_grad=reward_grad, one_sided=True
    )
    assert torch.equal(one_sided.matched, torch.tensor([[0.0], [1.0]]))
    # the one-head wrapper is the same arithmetic
    assert torch.equal(
        losses.goal_gradient_loss(one_sided),
        losses.dense_goal_gradient_loss(q_grad, reward_grad, torch.zeros(2, 2), torch.zeros(2), 0.9, one_sided=True),
    )
