"""Multi-ReenGAGE (Sec. 8.5, Eq. 8.19 / G.18): goal-gradient matching with respect to goal *gates*.

The critic sees a padded goal set through gates ``b`` (:mod:`.deep_sets`); the added term is
``alpha * MSE(grad_b Q(s, a, G, b), 2 R_item(s', G) + gamma (1 - d) grad_b Q'(s', pi'(s', G, b), G, b))``
(:func:`reengage.losses.gate_gradient_loss`). Everything else is :class:`~.goal_gradient.GoalGradientMixin`
and :class:`~.td3.TD3GoalGradient` unchanged: the mixin differentiates with respect to the observation
key ``reengage_goal_key`` (here the gates) and the TD3/DDPG target supplies ``Q'`` through ``pi'``; this
module only assembles the loss from the mixin's two gradients (``target_goal_gradient``,
``critic_goal_gradients``) with Eq. 8.19, whose target needs the item rewards that
:class:`~.goal_set_replay.GoalSetReplayBuffer` stores with each transition.

``reengage_alpha=0`` is the DDPG baseline with the same networks and replay.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import DDPG, TD3
from torch import Tensor

from reengage import losses

from .deep_sets import GATES_KEY, DeepSetsTD3Policy
from .goal_set_replay import GoalSetReplayBuffer
from .td3 import TD3GoalGradient


class GateGradientMixin(TD3GoalGradient):
    """Sets Multi-ReenGAGE's defaults and assembles the goal-gradient term as Eq. 8.19.

    Defaults: ``policy="DeepSetsPolicy"`` (:class:`~.deep_sets.DeepSetsTD3Policy`),
    ``replay_buffer_class=GoalSetReplayBuffer``, ``reengage_goal_key="gates"``.
    """

    def __init__(self, policy: Any = "DeepSetsPolicy", env: Any = None, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reengage_goal_key", GATES_KEY)
        if kwargs.get("replay_buffer_class") is None:
            kwargs["replay_buffer_class"] = GoalSetReplayBuffer
        super().__init__(policy, env, *args, **kwargs)

    def goal_gradient_loss(self, batch: Any, context: dict[str, Any] | None = None) -> tuple[Tensor, float]:
        """Eq. 8.19 / G.18 on a replay batch, summed over critic heads; nothing is masked (fraction 0)."""
        item_rewards = getattr(batch, "item_rewards", None)
        if item_rewards is None:
            raise ValueError(
                "Multi-ReenGAGE needs the per-goal rewards R_item in each replay sample; use "
                f"replay_buffer_class=GoalSetReplayBuffer (got samples of type {type(batch).__name__})"
            )
        next_gate_grad = self.target_goal_gradient(batch, context)
        total = sum(
            losses.gate_gradient_loss(q_gate_grad, item_rewards, next_gate_grad, batch.dones, self.gamma)
            for q_gate_grad in self.critic_goal_gradients(batch.observations, batch.actions)
        )
        return total, 0.0


class MultiReenGAGEDDPG(GateGradientMixin, DDPG):
    """stable-baselines3 DDPG on goal sets with the Multi-ReenGAGE term (alpha 0: plain DDPG)."""

    policy_aliases = {**DDPG.policy_aliases, "DeepSetsPolicy": DeepSetsTD3Policy}


class MultiReenGAGETD3(GateGradientMixin, TD3):
    """stable-baselines3 TD3 on goal sets with the Multi-ReenGAGE term (alpha 0: plain TD3)."""

    policy_aliases = {**TD3.policy_aliases, "DeepSetsPolicy": DeepSetsTD3Policy}
