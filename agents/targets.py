"""Bootstrapped targets and target-network updates, written once for every training path.

* :func:`td3_target_value` -- TD3's target value at s' (DDPG: one head, no smoothing noise), used by the
  SB3-path mixin (:class:`~reengage.agents.td3.TD3GoalGradient`), the fast autograd step, the
  hand-written step and the fused Multi-ReenGAGE step;
* :func:`td_target` -- ``r + (1 - d) * discount * V(s')``, the TD target of every fast step;
* :func:`polyak_update` -- ``target <- (1 - tau) target + tau online``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor


class TD3Target(NamedTuple):
    """TD3's target value at s' and what a hand-written backward through it needs."""

    value: Tensor  # (B, 1) min_j Q'_j(s', a')
    head: Tensor  # (B, 1) index of the head that gave the minimum: the min passes its gradient to it only
    action: Tensor  # pi'(s') + clipped noise, before the clip to [-1, 1] (which passes gradients where it lies within)


def td3_target_value(
    policy_action: Tensor,
    noise: Tensor | None,
    noise_clip: float,
    target_heads: Callable[[Tensor], Sequence[Tensor]],
) -> TD3Target:
    """``min_j Q'_j(s', clip(pi'(s') + clip(eps, -c, c), -1, 1))``: TD3's target value (DDPG: one head, c = 0).

    Args:
        policy_action: the target actor's action ``pi'(s')``, (B, action_dim).
        noise: the target-policy smoothing sample ``eps ~ N(0, sigma^2)``, each path drawing it from the
            generator it owes (SB3's from torch's global one, the SB3-path term from its private one);
            ``None``: no smoothing, and the action is used as it is (a tanh-squashed action needs no clip).
        noise_clip: ``c``.
        target_heads: the target critic's heads at s' for a given action, each (B, 1).
    """
    if noise is None:
        action = clipped = policy_action
    else:
        action = policy_action + noise.clamp(-noise_clip, noise_clip)
        clipped = action.clamp(-1.0, 1.0)
    value, head = torch.cat(list(target_heads(clipped)), dim=1).min(dim=1, keepdim=True)
    return TD3Target(value, head, action)


def td_target(batch: Any, gamma: float, next_value: Tensor) -> Tensor:
    """``r + (1 - d) * discount * V(s')`` for a replay batch, (B, 1).

    n-step buffers give per-transition discounts (``batch.discounts``, as in SB3); otherwise ``gamma``.
    """
    discounts = batch.discounts if getattr(batch, "discounts", None) is not None else gamma
    return batch.rewards + (1 - batch.dones) * discounts * next_value


def polyak_update(online: list[Tensor], targets: list[Tensor], tau: float, *, sb3_rounding: bool = False) -> None:
    """``target <- (1 - tau) target + tau online`` for every pair, in fused calls.

    ``sb3_rounding``: stable-baselines3's arithmetic element for element (``mul`` then ``add``), for
    steps held bit for bit against SB3's own update; otherwise one ``lerp`` (``target + tau (online -
    target)``, which rounds differently).
    """
    with torch.no_grad():
        if sb3_rounding:
            torch._foreach_mul_(targets, 1 - tau)
            torch._foreach_add_(targets, online, alpha=tau)
        else:
            torch._foreach_lerp_(targets, online, tau)
