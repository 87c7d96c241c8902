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

Training runs the fused step of :mod:`.multi_goal_update` by default (``gate_update="fused"``): the same
update with one target encoding, one critic encoding and one encoder forward for the actor per step
instead of eight encoder forwards and four backwards. ``gate_update="reference"`` runs SB3's ``train``
with the mixin's hook, the definition the fused step is tested against. The unshared-encoder ablation
(``share_encoder=False``) always takes the reference path.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3 import DDPG, TD3
from torch import Tensor

from reengage import losses

from .deep_sets import GATES_KEY, DeepSetsTD3Policy
from .goal_set_replay import GoalSetReplayBuffer
from .multi_goal_update import ACTOR_ENCODINGS, fused_train, supports_fused_update
from .td3 import TD3GoalGradient

GATE_UPDATES = ("fused", "reference")
ENCODER_AUTOCAST = {"float32": None, "bfloat16": torch.bfloat16}


class GateGradientMixin(TD3GoalGradient):
    """Sets Multi-ReenGAGE's defaults and assembles the goal-gradient term as Eq. 8.19.

    Defaults: ``policy="DeepSetsPolicy"`` (:class:`~.deep_sets.DeepSetsTD3Policy`),
    ``replay_buffer_class=GoalSetReplayBuffer``, ``reengage_goal_key="gates"``.

    Args (in addition to those of :class:`~.goal_gradient.GoalGradientMixin` and the SB3 class):
        gate_update: ``"fused"`` (default, :mod:`.multi_goal_update`) or ``"reference"`` (SB3's
            ``train`` plus the mixin's hook: eight encoder forwards per step; kept to check against).
        actor_encoding: fused path only: ``"after_step"`` (default, SB3's order: the actor sees the
            encoder as it is after the critic step) or ``"shared"`` (the actor reuses the critic's
            encoding of the batch from before the step; one encoder pass fewer, not SB3's order).
        encoder_precision: fused path only: ``"float32"`` (default) or ``"bfloat16"`` (the set
            encoder runs under autocast; see docs/performance.md for its effect on the loss).
    """

    def __init__(
        self,
        policy: Any = "DeepSetsPolicy",
        env: Any = None,
        *args: Any,
        gate_update: str = "fused",
        actor_encoding: str = "after_step",
        encoder_precision: str = "float32",
        **kwargs: Any,
    ) -> None:
        if gate_update not in GATE_UPDATES:
            raise ValueError(f"gate_update must be one of {GATE_UPDATES}, got {gate_update!r}")
        if actor_encoding not in ACTOR_ENCODINGS:
            raise ValueError(f"actor_encoding must be one of {ACTOR_ENCODINGS}, got {actor_encoding!r}")
        if encoder_precision not in ENCODER_AUTOCAST:
            raise ValueError(
                f"encoder_precision must be one of {tuple(ENCODER_AUTOCAST)}, got {encoder_precision!r}"
            )
        if kwargs.get("reengage_matching", "full") != "full":
            raise ValueError(
                f"reengage_matching={kwargs['reengage_matching']!r} is not available for Multi-ReenGAGE "
                "(gate gradients, Eq. 8.19); the valid choice is 'full'"
            )
        self.gate_update = gate_update
        self.actor_encoding = actor_encoding
        self.encoder_precision = encoder_precision
        kwargs.setdefault("reengage_goal_key", GATES_KEY)
        if kwargs.get("replay_buffer_class") is None:
            kwargs["replay_buffer_class"] = GoalSetReplayBuffer
        super().__init__(policy, env, *args, **kwargs)

    @property
    def encoder_autocast(self) -> torch.dtype | None:
        """The autocast type of the set encoder in the fused step (None: float32)."""
        return ENCODER_AUTOCAST[self.encoder_precision]

    @property
    def uses_fused_update(self) -> bool:
        return self.gate_update == "fused" and supports_fused_update(self.policy)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if self.uses_fused_update:
            fused_train(self, gradient_steps, batch_size)
        else:
            super().train(gradient_steps, batch_size)

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
