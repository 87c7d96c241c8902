"""ReenGAGE for TD3 and DDPG: the target is ``min_j Q'_j(s', clip(pi'(s', g) + noise), g)``."""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3 import DDPG, TD3
from torch import Tensor

from .goal_gradient import GoalGradientMixin, ObsDict


class TD3GoalGradient(GoalGradientMixin):
    """Target of TD3 (and of DDPG, which is TD3 with one critic, no delay and no target noise)."""

    def _target_value(self, next_obs: ObsDict, batch: Any, context: dict[str, Any]) -> Tensor:
        actions = batch.actions
        # the same clipped target-policy smoothing TD3 applies, drawn from the private generator
        noise = (self._draw_normal(actions.shape) * self.target_policy_noise).clamp(
            -self.target_noise_clip, self.target_noise_clip
        )
        next_actions = (self.actor_target(next_obs) + noise).clamp(-1.0, 1.0)
        next_q = torch.cat(self.critic_target(next_obs, next_actions), dim=1)
        return next_q.min(dim=1, keepdim=True).values


class ReenGAGETD3(TD3GoalGradient, TD3):
    """stable-baselines3 TD3 with the ReenGAGE goal-gradient term (see :class:`GoalGradientMixin`)."""


class ReenGAGEDDPG(TD3GoalGradient, DDPG):
    """stable-baselines3 DDPG with the ReenGAGE goal-gradient term (see :class:`GoalGradientMixin`)."""
