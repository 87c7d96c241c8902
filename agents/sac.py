"""ReenGAGE for SAC (App. G.5): differentiate through the reparameterised action and the entropy term.

The target is ``min_j Q'_j(s', a', g) - ent_coef * log pi(a' | s', g)`` with
``a' = tanh(mu(s', g) + sigma(s', g) * eps)``; its goal gradient flows through ``mu`` and ``sigma``
(the reparameterisation) and through the log-probability.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3 import SAC
from torch import Tensor

from .goal_gradient import GoalGradientMixin, ObsDict

# stable-baselines3's squashed Gaussian adds the same epsilon inside its tanh correction
_TANH_EPSILON = 1e-6


class SACGoalGradient(GoalGradientMixin):
    def _setup_model(self) -> None:
        super()._setup_model()
        if self.use_sde:
            raise ValueError("ReenGAGE-SAC supports use_sde=False only (the target draws its own Gaussian noise)")

    def _batch_context(self, batch: Any) -> dict[str, Any]:
        # SAC forms its target with the entropy coefficient read before that step's coefficient update
        if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
            return {"ent_coef": torch.exp(self.log_ent_coef.detach()).clone()}
        return {"ent_coef": self.ent_coef_tensor}

    def _target_value(self, next_obs: ObsDict, batch: Any, context: dict[str, Any]) -> Tensor:
        mean, log_std, _ = self.actor.get_action_dist_params(next_obs)
        std = log_std.exp()
        pre_tanh = mean + std * self._draw_normal(mean.shape)
        next_actions = torch.tanh(pre_tanh)
        log_prob = torch.distributions.Normal(mean, std).log_prob(pre_tanh).sum(dim=1, keepdim=True)
        log_prob = log_prob - torch.log(1.0 - next_actions**2 + _TANH_EPSILON).sum(dim=1, keepdim=True)
        next_q = torch.cat(self.critic_target(next_obs, next_actions), dim=1).min(dim=1, keepdim=True).values
        return next_q - context["ent_coef"] * log_prob


class ReenGAGESAC(SACGoalGradient, SAC):
    """stable-baselines3 SAC with the ReenGAGE goal-gradient term (see :class:`GoalGradientMixin`)."""
