"""ReenGAGE for TD3 and DDPG: the target is ``min_j Q'_j(s', clip(pi'(s', g) + noise), g)``."""

from __future__ import annotations

from typing import Any

from stable_baselines3 import DDPG, TD3
from torch import Tensor

from .goal_gradient import GoalGradientMixin, ObsDict
from .targets import td3_target_value

TARGET_DERIVATIVES = ("total", "partial")


class TD3GoalGradient(GoalGradientMixin):
    """Target of TD3 (and of DDPG, which is TD3 with one critic, no delay and no target noise).

    Args (in addition to :class:`GoalGradientMixin`'s):
        reengage_target_derivative: ``"total"`` (Eq. 8.9: the target gradient flows through the target
            actor ``pi'(s', g)`` too) or ``"partial"`` (the target action is held fixed; an ablation).
    """

    # read by _target_value; the diagnostics flip it for a moment to measure the target actor's share
    reengage_hold_target_action: bool = False

    def __init__(self, *args: Any, reengage_target_derivative: str = "total", **kwargs: Any) -> None:
        if reengage_target_derivative not in TARGET_DERIVATIVES:
            raise ValueError(
                f"reengage_target_derivative must be one of {TARGET_DERIVATIVES}, got {reengage_target_derivative!r}"
            )
        self.reengage_hold_target_action = reengage_target_derivative == "partial"
        super().__init__(*args, **kwargs)

    def _target_value(self, next_obs: ObsDict, batch: Any, context: dict[str, Any]) -> Tensor:
        # the same clipped target-policy smoothing TD3 applies, drawn from the private generator
        return self.td3_target(next_obs, self._draw_normal(batch.actions.shape) * self.target_policy_noise)

    def td3_target(self, next_obs: ObsDict, noise: Tensor | None) -> Tensor:
        """``min_j Q'_j(s', clip(pi'(s') + clip(noise), -1, 1))`` (:func:`~reengage.agents.targets.td3_target_value`).

        With ``reengage_target_derivative="partial"`` the target action is held fixed: no goal gradient
        flows through the target actor.
        """
        actor_obs = next_obs
        if self.reengage_hold_target_action:
            actor_obs = {key: value.detach() for key, value in next_obs.items()}
        return td3_target_value(
            self.actor_target(actor_obs),
            noise,
            self.target_noise_clip,
            lambda action: self.critic_target(next_obs, action),
        ).value


class ReenGAGETD3(TD3GoalGradient, TD3):
    """stable-baselines3 TD3 with the ReenGAGE goal-gradient term (see :class:`GoalGradientMixin`)."""


class ReenGAGEDDPG(TD3GoalGradient, DDPG):
    """stable-baselines3 DDPG with the ReenGAGE goal-gradient term (see :class:`GoalGradientMixin`)."""
