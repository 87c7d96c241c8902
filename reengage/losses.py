"""Goal-gradient critic losses of ReenGAGE and Multi-ReenGAGE.

Every function here is pure: tensors in, tensors out, no module state. Each sits next to the
equation it implements (Chapter 8 and Appendix G of the method document), so the code can be held
against the text:

* :func:`goal_gradient_residuals`    -- Eq. 8.9 (sparse rewards, the case ReenGAGE was built for) and
  Eq. 8.8 (rewards differentiable in the goal) as per-row, per-dimension residuals: the one place
  where the term, its sparse mask and the one-sided rule are applied; :func:`goal_gradient_loss`
  turns them into the loss (:func:`sparse_goal_gradient_loss`, :func:`dense_goal_gradient_loss`: one head)
* :func:`soft_max_target`            -- Eq. G.9 / G.10 (discrete actions, DQN)
* :func:`gate_gradient_loss`         -- Eq. 8.19 / G.18 (Multi-ReenGAGE, gradients w.r.t. goal gates)
* :func:`normalised_goal_weights`    -- App. G.4 (per-dimension weighting under observation normalisation)
* :func:`weaker_than_target_rows`    -- the toolkit's one-sided matching (not in the paper; docs/diagnosis.md)

Conventions (chosen to keep the paper's alpha scale): the gradient MSE is a mean over
batch x goal dimensions, and rows removed by the sparse mask still count in the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "goal_gradient_mse",
    "GoalGradientResiduals",
    "goal_gradient_residuals",
    "goal_gradient_loss",
    "sparse_goal_gradient_loss",
    "dense_goal_gradient_loss",
    "soft_max_target",
    "gate_gradient_loss",
    "normalised_goal_weights",
    "sparse_reward_mask",
    "weaker_than_target_rows",
    "MATCHINGS",
]

# which rows of the goal-gradient term are matched: "full" = every row the equation names (the paper's);
# "one_sided" = only rows whose critic goal gradient is weaker than its target (see weaker_than_target_rows)
MATCHINGS = ("full", "one_sided")


def _as_column(x: Tensor, batch: int) -> Tensor:
    """Rewards and dones arrive as (B,) or (B, 1); make them (B, 1) so they broadcast over goal dims."""
    if x.dim() == 1:
        x = x.unsqueeze(-1)
    if x.shape != (batch, 1):
        raise ValueError(f"expected a per-transition column of shape ({batch}, 1), got {tuple(x.shape)}")
    return x


def _weighted_mean_square(residual: Tensor, dim_weights: Tensor | None) -> Tensor:
    """Mean over batch x goal dimensions of ``w_i * residual^2`` (``w`` all ones when None)."""
    squared = residual**2
    if dim_weights is not None:
        if dim_weights.shape != residual.shape[-1:]:
            raise ValueError(f"dim_weights must have shape ({residual.shape[-1]},), got {tuple(dim_weights.shape)}")
        squared = squared * dim_weights
    return squared.mean()


def goal_gradient_mse(prediction: Tensor, target: Tensor, dim_weights: Tensor | None = None) -> Tensor:
    """Mean over batch x goal dimensions of ``w_i * (prediction - target)^2``.

    ``dim_weights`` (shape ``(goal_dim,)``) defaults to all ones. The target is detached here: the
    goal-gradient target is a label, never a path for gradients into target networks or the actor.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    return _weighted_mean_square(prediction - target.detach(), dim_weights)


def sparse_reward_mask(rewards: Tensor, c_low: float = -1.0) -> Tensor:
    """``1[R(s', g) = c_low]`` of Eq. 8.9 as a float column.

    Where the reward is at its high value the sparse reward is not differentiable in g (the goal sits
    on the edge of the success region), so those transitions carry no target gradient.
    """
    return (rewards == c_low).to(rewards.dtype)


def weaker_than_target_rows(q_goal_grad: Tensor, target: Tensor, dim_weights: Tensor | None = None) -> Tensor:
    """``1[ ||grad_g Q||_w < ||target||_w ]`` per row, a detached (B, 1) float column (one-sided matching).

    Not part of the paper. With a sparse success test (ContinuousSeek's L-infinity tolerance) the true
    value is a step function of the goal; the only goal slope the Bellman recursion carries comes from
    the reward's jump at the success boundary, which the sparse mask removes. Matching every row then
    also *flattens* the smooth success peak the critic learns from TD (where its slope exceeds the
    discounted slope one step later), and the actor, which climbs that peak, loses its signal
    (docs/diagnosis.md). One-sided matching keeps the half of the term that spreads slope to rows whose
    critic is flatter than its target and drops the half that erodes it. ``||.||_w`` is the norm the
    loss measures errors in (``sum_i w_i x_i^2``), so the choice is invariant to the same rescalings.
    """
    weights = 1.0 if dim_weights is None else dim_weights
    critic = (q_goal_grad.detach() ** 2 * weights).sum(dim=-1, keepdim=True)
    wanted = (target.detach() ** 2 * weights).sum(dim=-1, keepdim=True)
    return (critic < wanted).to(q_goal_grad.dtype)


class GoalGradientResiduals(NamedTuple):
    """The per-row, per-dimension residuals of the goal-gradient term, and what they were formed from.

    ``residuals[i]`` is head i's ``(B, goal_dim)`` residual ``r_i``, with the sparse mask and the
    one-sided rule already applied, so that the term is ``sum_i mean(w * r_i^2)``
    (:func:`goal_gradient_loss`). A hand-written backward uses them as they are: the term's
    derivative in ``grad_g Q_i`` is ``2 w r_i / (B * goal_dim)``.
    """

    residuals: list[Tensor]
    target: Tensor  # (B, goal_dim) the term's target (before the mask), detached
    matched: Tensor | None  # (B, 1) share of heads whose row is matched; None when every row of every head is
    dim_weights: Tensor | None  # the per-dimension weights w (App. G.4), None for all ones


def goal_gradient_residuals(
    q_goal_grads: Sequence[Tensor],
    next_target_goal_grad: Tensor,
    dones: Tensor,
    gamma: float,
    *,
    rewards: Tensor | None = None,
    c_low: float = -1.0,
    reward_goal_grad: Tensor | None = None,
    dim_weights: Tensor | None = None,
    one_sided: bool = False,
) -> GoalGradientResiduals:
    """Residuals of Eq. 8.9 (sparse: ``rewards`` given) or Eq. 8.8 (dense: ``reward_goal_grad`` given).

    Per critic head i, with target ``y = gamma (1 - d) grad_g Q'(s', pi'(s', g), g)`` (Eq. 8.9) or
    ``y = grad_g R(s', g) + gamma (1 - d) grad_g Q'(...)`` (Eq. 8.8)::

        r_i = m * grad_g Q_i(s, a, g) - m * y        m = 1[R(s', g) = c_low] (sparse), 1 (dense)

    and, with ``one_sided``, ``r_i`` times :func:`weaker_than_target_rows` of that head's row. Every
    path of the toolkit (the SB3 mixin, the fast autograd step, the hand-written step, the diagnostics)
    forms the term here; :func:`goal_gradient_loss` turns the residuals into the loss.

    Args:
        q_goal_grads: ``grad_g Q_i(s, a, g)`` of each critic head, each (B, goal_dim); with a graph
            (``create_graph=True``) when the loss is to reach the critic's parameters.
        next_target_goal_grad: total derivative in g of the target value ``Q'(s', pi'(s', g), g)``
            (through the target actor as well), shape (B, goal_dim).
        dones: terminal flags (not time-outs), (B,) or (B, 1); a terminal transition has no
            bootstrapped value and so no bootstrapped goal gradient.
        gamma: discount.
        rewards: ``R(s', g)``, (B,) or (B, 1): the sparse case, matched only where ``R == c_low``.
        c_low: the low value of the sparse reward.
        reward_goal_grad: ``grad_g R(s', g)`` of a reward differentiable in the goal, (B, goal_dim):
            the dense case (no mask).
        dim_weights: optional per-goal-dimension weights (App. G.4), shape (goal_dim,).
        one_sided: also drop rows whose critic goal gradient is already stronger than its target
            (the toolkit's option, not the paper's). Dropped rows still count in the mean, as masked
            ones do.
    """
    if (rewards is None) == (reward_goal_grad is None):
        raise ValueError("give rewards (sparse term, Eq. 8.9) or reward_goal_grad (dense term, Eq. 8.8), not both")
    for q_grad in q_goal_grads:
        if q_grad.shape != next_target_goal_grad.shape:
            shapes = f"{tuple(q_grad.shape)} and {tuple(next_target_goal_grad.shape)}"
            raise ValueError(f"critic goal gradient and target {shapes} differ in shape")
    batch = next_target_goal_grad.shape[0]
    not_done = 1.0 - _as_column(dones, batch).to(next_target_goal_grad.dtype)
    target = gamma * not_done * next_target_goal_grad
    mask: Tensor | None = None
    if reward_goal_grad is not None:  # Eq. 8.8
        target = reward_goal_grad + target
        label = target.detach()  # a label, never a path for gradients into the target networks
        residuals = [q_grad - label for q_grad in q_goal_grads]
    else:  # Eq. 8.9
        assert rewards is not None
        mask = sparse_reward_mask(_as_column(rewards, batch), c_low)
        masked_target = (mask * target).detach()
        residuals = [mask * q_grad - masked_target for q_grad in q_goal_grads]
    matched = mask
    if one_sided:
        rows = [weaker_than_target_rows(q_grad, target, dim_weights) for q_grad in q_goal_grads]
        residuals = [row * residual for row, residual in zip(rows, residuals)]
        kept = torch.stack(rows).mean(dim=0)
        matched = kept if mask is None else mask * kept
    return GoalGradientResiduals(residuals, target.detach(), matched, dim_weights)


def goal_gradient_loss(term: GoalGradientResiduals) -> Tensor:
    """Eq. 8.8 / 8.9 summed over critic heads: ``sum_i mean over batch x goal dims of w * r_i^2``."""
    total = sum(_weighted_mean_square(residual, term.dim_weights) for residual in term.residuals)
    assert isinstance(total, Tensor), "the term needs at least one critic head"
    return total


def sparse_goal_gradient_loss(
    q_goal_grad: Tensor,
    next_target_goal_grad: Tensor,
    rewards: Tensor,
    dones: Tensor,
    gamma: float,
    c_low: float = -1.0,
    dim_weights: Tensor | None = None,
    one_sided: bool = False,
) -> Tensor:
    """Eq. 8.9 for one critic head.

    ``mean( 1[R(s',g) = c_low] * (grad_g Q(s,a,g) - gamma (1 - d) grad_g Q'(s', pi'(s',g), g))^2 )``;
    see :func:`goal_gradient_residuals` for the arguments.
    """
    return goal_gradient_loss(
        goal_gradient_residuals(
            [q_goal_grad],
            next_target_goal_grad,
            dones,
            gamma,
            rewards=rewards,
            c_low=c_low,
            dim_weights=dim_weights,
            one_sided=one_sided,
        )
    )


def dense_goal_gradient_loss(
    q_goal_grad: Tensor,
    reward_goal_grad: Tensor,
    next_target_goal_grad: Tensor,
    dones: Tensor,
    gamma: float,
    dim_weights: Tensor | None = None,
    one_sided: bool = False,
) -> Tensor:
    """Eq. 8.8 for one critic head.

    ``mean( (grad_g Q(s,a,g) - [grad_g R(s',g) + gamma (1 - d) grad_g Q'(s', pi'(s',g), g)])^2 )``.
    ``reward_goal_grad`` is ``grad_g R(s', g)`` from a reward function differentiable in the goal; no
    mask. See :func:`goal_gradient_residuals` for the arguments.
    """
    return goal_gradient_loss(
        goal_gradient_residuals(
            [q_goal_grad],
            next_target_goal_grad,
            dones,
            gamma,
            reward_goal_grad=reward_goal_grad,
            dim_weights=dim_weights,
            one_sided=one_sided,
        )
    )


def soft_max_target(next_q_values: Tensor, tau: float) -> Tensor:
    """Eq. G.9: the soft maximum ``softmax(Q'(s', g) / tau) . Q'(s', g)`` over actions, shape (B, 1).

    ``tau = 0`` is the hard maximum (its goal gradient is that of the maximising action's value,
    Eq. G.10's limit). The result is differentiable in whatever ``next_q_values`` depends on.
    """
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    if tau == 0:
        return next_q_values.max(dim=-1, keepdim=True).values
    weights = torch.softmax(next_q_values / tau, dim=-1)
    return (weights * next_q_values).sum(dim=-1, keepdim=True)


def gate_gradient_loss(
    q_gate_grad: Tensor,
    item_rewards: Tensor,
    next_target_gate_grad: Tensor,
    dones: Tensor,
    gamma: float,
) -> Tensor:
    """Eq. 8.19 (App. G.18): ``mean( (grad_b Q - [2 R_item(s', g) + gamma (1 - d) grad_b Q'])^2 )``.

    The goal set enters the critic through gates ``b_i`` as ``sum_i b_i^2 * phi(s, g_i)`` and the
    reward as ``sum_i b_i^2 R_i``; at ``b = 1`` the gate derivative of the reward is ``2 R_i``.

    Args:
        q_gate_grad: ``grad_b Q(s, a, G, b)`` at the stored gates, shape (B, n_max), with a graph.
        item_rewards: per-goal rewards ``R_i(s', g_i)``, shape (B, n_max); zero on padding slots.
        next_target_gate_grad: ``grad_b Q'(s', pi'(s', G, b), G, b)``, shape (B, n_max).
        dones: terminal flags, (B,) or (B, 1).
        gamma: discount.
    """
    batch = q_gate_grad.shape[0]
    not_done = 1.0 - _as_column(dones, batch).to(q_gate_grad.dtype)
    target = 2.0 * item_rewards + gamma * not_done * next_target_gate_grad
    return goal_gradient_mse(q_gate_grad, target)


def normalised_goal_weights(goal_std: Tensor) -> Tensor:
    """App. G.4: per-dimension weights ``sigma_i^2`` for the goal-gradient MSE.

    A derivative in a coordinate scales inversely with that coordinate's scale, and the MSE with the
    square of the derivative; the appendix therefore multiplies the error of goal dimension i by
    ``sigma_i^2``, the running variance of that goal dimension. Pass the result as ``dim_weights``.
    """
    if torch.any(goal_std <= 0):
        raise ValueError("goal standard deviations must be positive")
    return goal_std**2
