"""Diagnostics of the goal-gradient term, as plain numbers a researcher can read in TensorBoard.

:func:`goal_gradient_diagnostics` is a pure function of tensors the agent already has at its critic step
(the critic's goal gradients, the term's target and matched rows, the Q-values, ...): no module state, no
optimiser. :func:`collect_goal_gradient_diagnostics` gathers those tensors from an agent (the SB3 path's
:class:`agents.goal_gradient.GoalGradientMixin` and the fast trainers alike), forming the target and the
matched rows with the term's own function.

What each key means (all are batch means unless the name says otherwise):

``grad_norm_critic``
    ``||grad_g Q(s, a, g)||_2`` of the critic being trained.
``grad_norm_target``
    ``||gamma (1 - d) grad_g Q'(s', pi'(s', g), g)||_2`` (plus ``grad_g R(s', g)`` in dense mode), the
    matching term's target (total derivative).
``grad_norm_target_partial``
    the same with the target action held fixed (``partial`` derivative only), when given: the gap to
    ``grad_norm_target`` is the target actor's contribution.
``grad_cosine``
    cosine between the critic's and the target's goal gradients, over the matched (unmasked) rows.
``grad_relative_error``
    ``||grad_g Q - target||^2 / ||target||^2`` over the matched rows (1 = no better than predicting 0).
``masked_fraction``
    share of transitions whose gradient is not matched (the sparse mask is 0: the reward was high; with
    one-sided matching, also the rows the one-sided rule drops).
``q_mean``, ``q_min``, ``q_max``, ``q_outside_return_range``
    the critic's values on the batch against the range ``[low, high]`` that discounted returns can take
    (``[c_low / (1 - gamma), 0]`` for a {c_low, 0} sparse reward); the last is the share outside it.
``action_grad_goal_grad_cosine``
    cosine between ``grad_a Q`` and ``-grad_g Q``; when the goal and the action live in the same
    coordinates (ContinuousSeek: Q depends on ``s + a - g``), a healthy critic gives about +1, and the
    goal-gradient term, which shapes ``grad_g Q``, shapes the actor's signal ``grad_a Q`` with it.
``action_grad_goal_direction_cosine``
    cosine between ``grad_a Q(s, a, g)`` and ``g - (s + a)``: does the critic tell the actor to move
    towards the goal? (ContinuousSeek only: the achieved goal is the position.)
``actor_goal_cosine``, ``actor_goal_sign_agreement``
    cosine between the actor's action ``pi(s, g)`` and ``g - achieved_goal``, and the share of
    coordinates where their signs agree (ContinuousSeek only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from .goal_autograd import ObsDict, with_leaf

__all__ = [
    "goal_gradient_diagnostics",
    "sparse_return_range",
    "parameter_gradient_ratio",
    "collect_goal_gradient_diagnostics",
    "critic_gradients",
]

# avoids 0/0 in cosines of zero vectors: such rows then count as cosine 0
_EPS = 1e-12


def _row_cosine(x: Tensor, y: Tensor) -> Tensor:
    """Cosine of each row pair, (B,); 0 where a row is the zero vector."""
    dot = (x * y).sum(dim=-1)
    return dot / (x.norm(dim=-1) * y.norm(dim=-1)).clamp_min(_EPS)


def _masked_mean(values: Tensor, weights: Tensor) -> float:
    total = float(weights.sum())
    return float((values * weights).sum()) / total if total > 0 else float("nan")


def sparse_return_range(c_low: float, gamma: float, c_high: float = 0.0) -> tuple[float, float]:
    """The interval discounted returns of a reward in ``{c_low, c_high}`` lie in: ``[min, max] / (1 - gamma)``."""
    if not 0 <= gamma < 1:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
    low, high = sorted((float(c_low), float(c_high)))
    return low / (1.0 - gamma), high / (1.0 - gamma)


def goal_gradient_diagnostics(
    q_goal_grads: Tensor,
    target_goal_grads: Tensor,
    q_values: Tensor,
    mask: Tensor,
    *,
    return_range: tuple[float, float] | None = None,
    target_goal_grads_partial: Tensor | None = None,
    action_grads: Tensor | None = None,
    goal_directions: Tensor | None = None,
    policy_actions: Tensor | None = None,
    actor_goal_directions: Tensor | None = None,
) -> dict[str, float]:
    """Scalar diagnostics of one batch of the goal-gradient term (see the module docstring for the keys).

    Args:
        q_goal_grads: ``grad_g Q(s, a, g)`` of one critic head, (B, goal_dim).
        target_goal_grads: the matching target ``gamma (1 - d) grad_g Q'(...)`` as the loss uses it, (B, goal_dim).
        q_values: ``Q(s, a, g)`` of that head, (B,) or (B, 1).
        mask: 1 where the gradient is matched, 0 where it is masked out, (B,) or (B, 1).
        return_range: ``(low, high)`` of discounted returns, for the value-range keys.
        target_goal_grads_partial: the target with the target action held fixed, (B, goal_dim).
        action_grads: ``grad_a Q(s, a, g)`` at the same (s, a, g), (B, action_dim).
        goal_directions: ``g - (s + a)`` for the action-gradient direction check, (B, action_dim).
        policy_actions: ``pi(s, g)``, (B, action_dim).
        actor_goal_directions: ``g - achieved_goal(s)``, (B, action_dim).
    """
    q_goal_grads = q_goal_grads.detach().float()
    target_goal_grads = target_goal_grads.detach().float()
    if q_goal_grads.shape != target_goal_grads.shape:
        raise ValueError(
            f"critic and target goal gradients differ in shape: {tuple(q_goal_grads.shape)} vs "
            f"{tuple(target_goal_grads.shape)}"
        )
    mask = mask.detach().float().reshape(-1)
    q_values = q_values.detach().float().reshape(-1)
    out = {
        "grad_norm_critic": float(q_goal_grads.norm(dim=-1).mean()),
        "grad_norm_target": float(target_goal_grads.norm(dim=-1).mean()),
        "grad_cosine": _masked_mean(_row_cosine(q_goal_grads, target_goal_grads), mask),
        "masked_fraction": 1.0 - float(mask.mean()),
        "q_mean": float(q_values.mean()),
        "q_min": float(q_values.min()),
        "q_max": float(q_values.max()),
    }
    matched = mask.bool()
    target_energy = float((target_goal_grads[matched] ** 2).sum())
    error_energy = float(((q_goal_grads - target_goal_grads)[matched] ** 2).sum())
    out["grad_relative_error"] = error_energy / target_energy if target_energy > 0 else float("nan")
    if return_range is not None:
        low, high = return_range
        outside = (q_values < low) | (q_values > high)
        out["q_outside_return_range"] = float(outside.float().mean())
    if target_goal_grads_partial is not None:
        out["grad_norm_target_partial"] = float(target_goal_grads_partial.detach().float().norm(dim=-1).mean())
    if action_grads is not None:
        action_grads = action_grads.detach().float()
        if action_grads.shape == q_goal_grads.shape:
            out["action_grad_goal_grad_cosine"] = float(_row_cosine(action_grads, -q_goal_grads).mean())
        if goal_directions is not None:
            out["action_grad_goal_direction_cosine"] = float(
                _row_cosine(action_grads, goal_directions.detach().float()).mean()
            )
    if policy_actions is not None and actor_goal_directions is not None:
        actions = policy_actions.detach().float()
        directions = actor_goal_directions.detach().float()
        out["actor_goal_cosine"] = float(_row_cosine(actions, directions).mean())
        out["actor_goal_sign_agreement"] = float((torch.sign(actions) == torch.sign(directions)).float().mean())
    return out


def parameter_gradient_ratio(before: list[Tensor | None], after: list[Tensor | None]) -> dict[str, float]:
    """Norms of the TD loss's and the goal-gradient term's parameter gradients, and their ratio.

    ``before`` are the critic's ``.grad`` tensors after the TD loss's backward, ``after`` the same
    tensors once ``alpha * L_goal_gradient`` has been back-propagated on top; the term's share is the
    difference. A ratio far above 1 means the term, not the TD loss, steers the critic.
    """
    td_sq, term_sq = 0.0, 0.0
    for grad_before, grad_after in zip(before, after, strict=True):
        if grad_after is None:
            continue
        base = torch.zeros_like(grad_after) if grad_before is None else grad_before
        td_sq += float((base.float() ** 2).sum())
        term_sq += float(((grad_after - base).float() ** 2).sum())
    td_norm, term_norm = td_sq**0.5, term_sq**0.5
    return {
        "param_grad_norm_td": td_norm,
        "param_grad_norm_term": term_norm,
        "param_grad_ratio_term_to_td": term_norm / td_norm if td_norm > 0 else float("nan"),
    }


# ---------------------------------------------------------------------------------------------------
# The agent-facing side: gather the tensors above from a GoalGradientMixin agent on one replay batch.
# ---------------------------------------------------------------------------------------------------
class DiagnosedAgent(Protocol):
    """What :func:`collect_goal_gradient_diagnostics` reads of an agent (a GoalGradientMixin agent)."""

    gamma: float
    c_low: float
    reengage_mode: str
    reengage_goal_key: str
    policy: Any

    def get_reengage_rng_state(self) -> Tensor: ...

    def set_reengage_rng_state(self, state: Tensor) -> None: ...

    def target_goal_gradient(self, batch: Any, context: dict[str, Any] | None = None) -> Tensor: ...

    def _current_q_heads(self, obs: ObsDict, actions: Tensor) -> Sequence[Tensor]: ...

    def _dim_weights(self, goal_dim: int) -> Tensor | None: ...

    def term_inputs(self, batch: Any, dim_weights: Tensor | None) -> Any: ...


def collect_goal_gradient_diagnostics(agent: DiagnosedAgent, batch: Any, context: dict[str, Any]) -> dict[str, float]:
    """Diagnostics of ``agent``'s goal-gradient term on ``batch`` (first critic head), as floats.

    The target and the matched rows are the term's own (:meth:`TermInputs.residuals`, i.e.
    :func:`reengage.losses.goal_gradient_residuals`). Reads the agent only: the target's noise is drawn
    from the agent's private generator and its state is restored afterwards, so a run with diagnostics
    trains exactly like one without.
    """
    state = agent.get_reengage_rng_state()
    try:
        target_grad = agent.target_goal_gradient(batch, context)
        agent.set_reengage_rng_state(state)
        partial_grad = None
        # TD3-family agents (TD3GoalGradient) can hold the target action fixed: the partial derivative
        held = getattr(agent, "reengage_hold_target_action", None)
        if held is not None:
            agent.reengage_hold_target_action = True
            try:
                partial_grad = agent.target_goal_gradient(batch, context)
            finally:
                agent.reengage_hold_target_action = held
    finally:
        agent.set_reengage_rng_state(state)

    key = agent.reengage_goal_key
    obs, goal = with_leaf(batch.observations, key)
    # discrete actions (DQN) have no action gradient
    continuous = batch.actions.is_floating_point()
    actions = batch.actions.detach().clone().requires_grad_(continuous)
    with torch.enable_grad():
        q_values = agent._current_q_heads(obs, actions)[0]
        inputs = (goal, actions) if continuous else (goal,)
        q_goal_grad, *rest = torch.autograd.grad(q_values.sum(), inputs)
    action_grad = rest[0] if continuous else None
    term_inputs = agent.term_inputs(batch, agent._dim_weights(q_goal_grad.shape[-1]))
    term = term_inputs.residuals([q_goal_grad], target_grad)
    mask = torch.ones(q_values.shape[0]) if term.matched is None else term.matched
    partial = None if partial_grad is None else term_inputs.residuals([q_goal_grad], partial_grad).target
    return_range = sparse_return_range(agent.c_low, agent.gamma) if agent.reengage_mode == "sparse" else None

    goal_directions = policy_actions = actor_directions = None
    achieved = batch.observations.get("achieved_goal")
    if continuous and achieved is not None and achieved.shape == actions.shape:
        # ContinuousSeek-like: the achieved goal is the position and the action moves it
        desired = batch.observations[key].float()
        goal_directions = desired - (achieved.float() + batch.actions)
        actor_directions = desired - achieved.float()
        with torch.no_grad():
            policy_actions = agent.policy._predict(batch.observations, deterministic=True)
    return goal_gradient_diagnostics(
        q_goal_grad,
        term.target,
        q_values,
        mask,
        return_range=return_range,
        target_goal_grads_partial=partial,
        action_grads=action_grad,
        goal_directions=goal_directions,
        policy_actions=policy_actions,
        actor_goal_directions=actor_directions,
    )


def critic_gradients(optimizer: torch.optim.Optimizer) -> list[Tensor | None]:
    """Copies of the ``.grad`` of every parameter the optimiser steps (``None`` where there is none)."""
    return [
        None if p.grad is None else p.grad.detach().clone() for group in optimizer.param_groups for p in group["params"]
    ]
