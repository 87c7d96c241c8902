"""Goal-gradient critic losses of ReenGAGE and Multi-ReenGAGE.

Every function here is pure: tensors in, one tensor out, no module state. Each sits next to the
equation it implements (Chapter 8 and Appendix G of the method document), so the code can be held
against the text:

* :func:`sparse_goal_gradient_loss`  -- Eq. 8.9 (sparse rewards, the case ReenGAGE was built for)
* :func:`dense_goal_gradient_loss`   -- Eq. 8.8 (rewards differentiable in the goal)
* :func:`soft_max_target`            -- Eq. G.9 / G.10 (discrete actions, DQN)
* :func:`gate_gradient_loss`         -- Eq. 8.19 / G.18 (Multi-ReenGAGE, gradients w.r.t. goal gates)
* :func:`normalised_goal_weights`    -- App. G.4 (per-dimension weighting under observation normalisation)
* :func:`weaker_than_target_rows`    -- the toolkit's one-sided matching (not in the paper; docs/diagnosis.md)

Conventions (chosen to keep the paper's alpha scale): the gradient MSE is a mean over
batch x goal dimensions, and rows removed by the sparse mask still count in the mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "goal_gradient_mse",
    "sparse_goal_gradient_loss",
    "dense_goal_gradient_loss",
    "soft_max_target",
    "gate_gradient_loss",
    "normalised_goal_weights",
    "sparse_reward_mask",
    "weaker_than_target_rows",
    "one_sided_kept_share",
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


def goal_gradient_mse(prediction: Tensor, target: Tensor, dim_weights: Tensor | None = None) -> Tensor:
    """Mean over batch x goal dimensions of ``w_i * (prediction - target)^2``.

    ``dim_weights`` (shape ``(goal_dim,)``) defaults to all ones. The target is detached here: the
    goal-gradient target is a label, never a path for gradients into target networks or the actor.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape")
    squared = (prediction - target.detach()) ** 2
    if dim_weights is not None:
        if dim_weights.shape != prediction.shape[-1:]:
            raise ValueError(
                f"dim_weights must have shape ({prediction.shape[-1]},), got {tuple(dim_weights.shape)}"
            )
        squared = squared * dim_weights
    return squared.mean()


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


def one_sided_kept_share(q_goal_grads: list[Tensor], target: Tensor, dim_weights: Tensor | None = None) -> Tensor:
    """Per row, the share of critic heads whose row one-sided matching keeps, a (B, 1) column in [0, 1].

    ``target`` is the term's target as the losses form it (``gamma (1 - d) grad_g Q'``, plus ``grad_g R`` in
    dense mode). For the logged share of unmatched rows, not for the loss.
    """
    return torch.stack([weaker_than_target_rows(q_grad, target, dim_weights) for q_grad in q_goal_grads]).mean(dim=0)


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
    """Eq. 8.9: ``mean( 1[R(s',g) = c_low] * (grad_g Q(s,a,g) - gamma (1 - d) grad_g Q'(s', pi'(s',g), g))^2 )``.

    Args:
        q_goal_grad: ``grad_g Q(s, a, g)`` of the critic being trained, shape (B, goal_dim), built with
            ``create_graph=True`` so that the loss reaches the critic's parameters.
        next_target_goal_grad: total derivative in g of the target value ``Q'(s', pi'(s', g), g)``
            (through the target actor as well), shape (B, goal_dim).
        rewards: ``R(s', g)`` of each transition, (B,) or (B, 1).
        dones: terminal flags (not time-outs), (B,) or (B, 1); a terminal transition has no
            bootstrapped value and so no bootstrapped goal gradient.
        gamma: discount.
        c_low: the low value of the sparse reward; only transitions with ``R == c_low`` are matched.
        dim_weights: optional per-goal-dimension weights (App. G.4).
        one_sided: also drop rows whose critic goal gradient is already stronger than its target
            (:func:`weaker_than_target_rows`; the toolkit's option, not Eq. 8.9). Dropped rows still
            count in the mean, as masked ones do.
    """
    batch = q_goal_grad.shape[0]
    mask = sparse_reward_mask(_as_column(rewards, batch), c_low)
    not_done = 1.0 - _as_column(dones, batch).to(q_goal_grad.dtype)
    target = gamma * not_done * next_target_goal_grad
    if one_sided:
        mask = mask * weaker_than_target_rows(q_goal_grad, target, dim_weights)
    return goal_gradient_mse(mask * q_goal_grad, mask * target, dim_weights)


def dense_goal_gradient_loss(
    q_goal_grad: Tensor,
    reward_goal_grad: Tensor,
    next_target_goal_grad: Tensor,
    dones: Tensor,
    gamma: float,
    dim_weights: Tensor | None = None,
    one_sided: bool = False,
) -> Tensor:
    """Eq. 8.8: ``mean( (grad_g Q(s,a,g) - [grad_g R(s',g) + gamma (1 - d) grad_g Q'(s', pi'(s',g), g)])^2 )``.

    ``reward_goal_grad`` is ``grad_g R(s', g)`` from a reward function differentiable in the goal.
    No mask: every transition carries a target gradient (``one_sided``: see
    :func:`sparse_goal_gradient_loss`).
    """
    batch = q_goal_grad.shape[0]
    not_done = 1.0 - _as_column(dones, batch).to(q_goal_grad.dtype)
    target = reward_goal_grad + gamma * not_done * next_target_goal_grad
    if one_sided:
        rows = weaker_than_target_rows(q_goal_grad, target, dim_weights)
        return goal_gradient_mse(rows * q_goal_grad, rows * target, dim_weights)
    return goal_gradient_mse(q_goal_grad, target, dim_weights)


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
