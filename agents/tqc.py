"""ReenGAGE for TQC (sb3-contrib's Truncated Quantile Critics): the target is the mean of the truncated quantiles.

TQC's critic has ``N`` nets of ``M`` quantiles each. Its TD target pools the ``N * M`` target quantiles at
``(s', a')``, sorts them, drops the top ``k`` per net (``top_quantiles_to_drop_per_net``) and subtracts the
entropy term, ``z_i(s', a', g) - ent_coef * log pi(a' | s', g)`` for the ``N * M - N * k`` kept ``z_i``,
with ``a' = tanh(mu(s', g) + sigma(s', g) * eps)`` reparameterised as in SAC (App. G.5).

The term matches, for each critic net ``j``, the goal gradient of its value ``Q_j(s, a, g)`` (the mean of
its ``M`` quantiles) to the goal gradient of the target's value, the mean of the kept quantiles minus the
entropy term::

    grad_g Q_j(s, a, g)   ~   gamma (1 - d) grad_g [ mean_i z_(i)(s', a'(s', g), g) - ent_coef log pi(a' | s', g) ]

(the sparse mask and the dense reward gradient as in Eq. 8.9 / 8.8). It is SAC's target with the mean of
the truncated quantiles in place of the minimum over twin critics: the goal enters the next observation,
the reparameterised next action and the reward mask exactly as in :mod:`reengage.agents.sac`. Sorting is a
permutation, so the goal gradient of the truncated mean is the mean of the goal gradients of the quantiles
kept at this goal (almost everywhere: where two quantiles tie at the cut, the derivative is one-sided).
"""

from __future__ import annotations

from typing import Any

import torch
from sb3_contrib import TQC
from torch import Tensor

from .goal_gradient import ObsDict
from .sac import SACGoalGradient


def truncated_quantiles(next_quantiles: Tensor, drop_per_net: int) -> Tensor:
    """TQC's pooled target quantiles, sorted, without the top ``drop_per_net`` per net: (B, N * (M - k)).

    ``next_quantiles`` is the target critic's output, (B, N nets, M quantiles).
    """
    batch, nets, quantiles = next_quantiles.shape
    kept = nets * (quantiles - drop_per_net)
    return torch.sort(next_quantiles.reshape(batch, nets * quantiles), dim=1).values[:, :kept]


def quantile_means(quantiles: Tensor) -> list[Tensor]:
    """Each critic net's value, the mean of its quantiles: N columns (B, 1) from (B, N, M)."""
    return list(quantiles.mean(dim=2).unsqueeze(-1).unbind(dim=1))


class TQCGoalGradient(SACGoalGradient):
    """The ReenGAGE term for TQC: each net's quantile mean matched to the truncated target's (module docstring)."""

    def _current_q_heads(self, obs: ObsDict, actions: Tensor) -> list[Tensor]:
        return quantile_means(self.critic(obs, actions))

    def _target_value(self, next_obs: ObsDict, batch: Any, context: dict[str, Any]) -> Tensor:
        next_actions, log_prob = self._next_action_log_prob(next_obs)
        kept = truncated_quantiles(self.critic_target(next_obs, next_actions), self.top_quantiles_to_drop_per_net)
        return kept.mean(dim=1, keepdim=True) - context["ent_coef"] * log_prob


class ReenGAGETQC(TQCGoalGradient, TQC):
    """sb3-contrib TQC with the ReenGAGE goal-gradient term (see :class:`GoalGradientMixin` and this module)."""
