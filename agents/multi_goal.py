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

The classes here train with SB3's ``train`` plus the mixin's hook: the reference definition (config key
``trainer: sb3``). :class:`~reengage.agents.MultiReenGAGEDDPG` and
:class:`~reengage.agents.MultiReenGAGETD3` (:mod:`reengage.agents.fast.multi_goal`, ``trainer: fast``)
run the same update fused, with one target encoding, one critic encoding and one encoder forward for the
actor per step instead of eight encoder forwards and four backwards.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import DDPG, TD3
from torch import Tensor

from reengage import losses

from .deep_sets import GATES_KEY, DeepSetsTD3Policy
from .goal_set_replay import GoalSetReplayBuffer
from .td3 import TD3GoalGradient


def item_rewards_of(batch: Any) -> Tensor:
    """The per-goal rewards ``R_item`` a replay sample carries; a message naming the buffer when it has none."""
    item_rewards = getattr(batch, "item_rewards", None)
    if item_rewards is None:
        raise ValueError(
            "Multi-ReenGAGE needs the per-goal rewards R_item in each replay sample; use "
            f"replay_buffer_class=GoalSetReplayBuffer (got samples of type {type(batch).__name__})"
        )
    return item_rewards


class GateGradientMixin(TD3GoalGradient):
    """Sets Multi-ReenGAGE's defaults and assembles the goal-gradient term as Eq. 8.19.

    Defaults: ``policy="DeepSetsPolicy"`` (:class:`~.deep_sets.DeepSetsTD3Policy`),
    ``replay_buffer_class=GoalSetReplayBuffer``, ``reengage_goal_key="gates"``.
    Takes the arguments of :class:`~.goal_gradient.GoalGradientMixin` and of the SB3 class.
    """

    def __init__(self, policy: Any = "DeepSetsPolicy", env: Any = None, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("reengage_matching", "full") != "full":
            raise ValueError(
                f"reengage_matching={kwargs['reengage_matching']!r} is not available for Multi-ReenGAGE "
                "(gate gradients, Eq. 8.19); the valid choice is 'full'"
            )
        kwargs.setdefault("reengage_goal_key", GATES_KEY)
        if kwargs.get("replay_buffer_class") is None:
            kwargs["replay_buffer_class"] = GoalSetReplayBuffer
        super().__init__(policy, env, *args, **kwargs)

    def goal_gradient_loss(self, batch: Any, context: dict[str, Any] | None = None) -> tuple[Tensor, float]:
        """Eq. 8.19 / G.18 on a replay batch, summed over critic heads; nothing is masked (fraction 0)."""
        item_rewards = item_rewards_of(batch)
        next_gate_grad = self.target_goal_gradient(batch, context)
        total = sum(
            losses.gate_gradient_loss(q_gate_grad, item_rewards, next_gate_grad, batch.dones, self.gamma)
            for q_gate_grad in self.critic_goal_gradients(batch.observations, batch.actions)
        )
        assert isinstance(total, Tensor)
        return total, 0.0


class ReferenceMultiReenGAGEDDPG(GateGradientMixin, DDPG):
    """stable-baselines3 DDPG on goal sets with the Multi-ReenGAGE term through the optimiser hook (alpha 0: DDPG).

    The reference definition (``trainer: sb3``); :class:`~reengage.agents.MultiReenGAGEDDPG` trains the same
    update fused.
    """

    policy_aliases = {**DDPG.policy_aliases, "DeepSetsPolicy": DeepSetsTD3Policy}


class ReferenceMultiReenGAGETD3(GateGradientMixin, TD3):
    """stable-baselines3 TD3 on goal sets with the Multi-ReenGAGE term through the optimiser hook (alpha 0: TD3).

    The reference definition (``trainer: sb3``); :class:`~reengage.agents.MultiReenGAGETD3` trains the same
    update fused.
    """

    policy_aliases = {**TD3.policy_aliases, "DeepSetsPolicy": DeepSetsTD3Policy}
