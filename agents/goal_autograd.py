"""Goal gradients by autograd: goal leaves, the target's total goal gradient and the critic's.

Every autograd path of the toolkit (the SB3 mixin, the fast autograd step, the diagnostics) takes its
goal gradients from here; the hand-written TD3/DDPG step forms the same quantities in closed form
(:mod:`reengage.agents.manual_mlp`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

ObsDict = dict[str, Tensor]


def with_leaf(obs: ObsDict, key: str) -> tuple[ObsDict, Tensor]:
    """Copy of ``obs`` whose entry ``key`` is a fresh float leaf that requires grad.

    Binary goals (MultiBinary, stored as integers) are differentiated through their float
    relaxation: the network sees the same values, now as floats with a gradient.
    """
    value = obs[key].detach()
    if not value.is_floating_point():
        value = value.float()
    leaf = value.clone().requires_grad_(True)
    return {**obs, key: leaf}, leaf


def target_value_and_goal_gradient(
    target_value: Callable[[ObsDict], Tensor],
    next_observations: ObsDict,
    goal_key: str,
    with_goal_gradient: bool,
) -> tuple[Tensor, Tensor | None]:
    """The bootstrapped value at s' (detached, (B, 1)) and, if asked, its total goal gradient (B, goal_dim).

    ``target_value`` maps observations to the algorithm's target value (target actor, noise, min over
    target critics, entropy...), through everything that depends on the goal: the gradient is the total
    derivative (Eq. 8.9's target). With frozen target networks the one forward serves both the TD target
    and the goal gradient, with no graph into their parameters.
    """
    if not with_goal_gradient:
        with torch.no_grad():
            return target_value(next_observations), None
    next_obs, next_goal = with_leaf(next_observations, goal_key)
    with torch.enable_grad():
        value = target_value(next_obs)
        (goal_gradient,) = torch.autograd.grad(value.sum(), next_goal)
    return value.detach(), goal_gradient


def critic_goal_gradients(q_values: Sequence[Tensor], goal_leaves: Sequence[Tensor]) -> list[Tensor]:
    """``grad_g Q_i`` of every critic head, with a graph into the critic's parameters.

    ``goal_leaves[i]`` is the goal leaf head i was computed from. Heads with leaves of their own are
    differentiated in one call; heads that share a leaf take one call each, since one call would return
    the sum of their gradients.
    """
    if len({id(leaf) for leaf in goal_leaves}) == len(goal_leaves):
        return list(torch.autograd.grad([q.sum() for q in q_values], list(goal_leaves), create_graph=True))
    return [torch.autograd.grad(q.sum(), leaf, create_graph=True)[0] for q, leaf in zip(q_values, goal_leaves)]
