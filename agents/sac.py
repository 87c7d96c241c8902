"""ReenGAGE for SAC (App. G.5): differentiate through the reparameterised action and the entropy term.

The target is ``min_j Q'_j(s', a', g) - ent_coef * log pi(a' | s', g)`` with
``a' = tanh(mu(s', g) + sigma(s', g) * eps)``; its goal gradient flows through ``mu`` and ``sigma``
(the reparameterisation) and through the log-probability.

With gSDE (``use_sde=True``) the noise is ``phi(s', g) @ E``: ``phi`` the actor's last hidden layer,
``E`` the exploration matrix (``E_ij ~ N(0, sigma_ij^2)``, independent of the goal), so the action's
distribution at ``s'`` is ``tanh(N(mu, phi^2 @ sigma^2))``. Holding ``E`` fixed is a valid
reparameterisation of that distribution, so the goal gradient of the sampled target is an unbiased
estimate of the goal gradient of the expected target, as without gSDE. It flows through ``mu``, through
``phi(s', g)`` in the noise and in the variance of ``log pi`` (SAC's actor learns its gSDE features, so
SB3 keeps that path). ``E`` is the matrix SB3 drew at the start of the gradient step and used for its
own TD target: the term differentiates that very target and draws nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from stable_baselines3 import SAC
from torch import Tensor

from .goal_gradient import GoalGradientMixin, ObsDict

# stable-baselines3's squashed Gaussian adds the same epsilon inside its tanh correction
_TANH_EPSILON = 1e-6


def reparameterised_action_log_prob(
    actor: Any, next_obs: ObsDict, use_sde: bool, draw_normal: Callable[[Sequence[int]], Tensor]
) -> tuple[Tensor, Tensor]:
    """``a' = tanh(mu + sigma * eps)`` at ``next_obs`` and ``log pi(a' | s')`` as a (B, 1) column, both
    differentiable in ``next_obs`` (SAC and its relatives: TQC, CrossQ).

    ``eps`` comes from ``draw_normal`` (the mixin's private generator); with gSDE the actor's current
    exploration matrix gives the noise, through SB3's own distribution (see the module docstring).
    """
    if use_sde:
        next_actions, log_prob = actor.action_log_prob(next_obs)
        return next_actions, log_prob.reshape(-1, 1)
    mean, log_std, _ = actor.get_action_dist_params(next_obs)
    std = log_std.exp()
    pre_tanh = mean + std * draw_normal(mean.shape)
    next_actions = torch.tanh(pre_tanh)
    log_prob = torch.distributions.Normal(mean, std).log_prob(pre_tanh).sum(dim=1, keepdim=True)
    log_prob = log_prob - torch.log(1.0 - next_actions**2 + _TANH_EPSILON).sum(dim=1, keepdim=True)
    return next_actions, log_prob


class SACGoalGradient(GoalGradientMixin):
    def _batch_context(self, batch: Any) -> dict[str, Any]:
        # SAC forms its target with the entropy coefficient read before that step's coefficient update
        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            return {"ent_coef": torch.exp(self.log_ent_coef.detach()).clone()}
        return {"ent_coef": self.ent_coef_tensor}

    def _next_action_log_prob(self, next_obs: ObsDict) -> tuple[Tensor, Tensor]:
        """The term's reparameterised target action at s' and its log-probability (B, 1)."""
        return reparameterised_action_log_prob(self.actor, next_obs, self.use_sde, self._draw_normal)

    def _target_value(self, next_obs: ObsDict, batch: Any, context: dict[str, Any]) -> Tensor:
        next_actions, log_prob = self._next_action_log_prob(next_obs)
        next_q = torch.cat(self.critic_target(next_obs, next_actions), dim=1).min(dim=1, keepdim=True).values
        return next_q - context["ent_coef"] * log_prob


class ReenGAGESAC(SACGoalGradient, SAC):
    """stable-baselines3 SAC with the ReenGAGE goal-gradient term (see :class:`GoalGradientMixin`)."""
