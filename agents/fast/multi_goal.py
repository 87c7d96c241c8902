"""The fast Multi-ReenGAGE agents: the fused DDPG/TD3 step (:mod:`.multi_goal_update`) in an SB3 shell.

:class:`MultiReenGAGEDDPG` and :class:`MultiReenGAGETD3` (``trainer: fast``, and the classes users import
as ``reengage.agents.MultiReenGAGEDDPG``) train the update of their reference classes
(:class:`~reengage.agents.multi_goal.ReferenceMultiReenGAGEDDPG`, ``trainer: sb3``: SB3's ``train`` plus
the term's optimiser hook) fused: one target encoding, one critic encoding and one encoder forward for the
actor per step. ``gate_update="reference"`` runs the reference update in the same class (as
``manual_update = False`` does for TD3), to check one against the other; the unshared-encoder ablation
(``share_encoder=False``) always takes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3 import TD3

from ..multi_goal import GateGradientMixin, ReferenceMultiReenGAGEDDPG, ReferenceMultiReenGAGETD3, item_rewards_of
from ..targets import polyak_update
from .multi_goal_update import (
    ACTOR_ENCODINGS,
    actor_loss,
    batch_pairs,
    critic_terms,
    supports_fused_update,
    target_terms,
)

GATE_UPDATES = ("fused", "reference")
ENCODER_AUTOCAST = {"float32": None, "bfloat16": torch.bfloat16}


class FusedGateTrainer(GateGradientMixin, TD3):
    """The fused Multi-ReenGAGE ``train()``. Place it first in the bases of a reference Multi-ReenGAGE class.

    Args (in addition to those of :class:`~reengage.agents.multi_goal.GateGradientMixin` and the SB3 class):
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
            raise ValueError(f"encoder_precision must be one of {tuple(ENCODER_AUTOCAST)}, got {encoder_precision!r}")
        self.gate_update = gate_update
        self.actor_encoding = actor_encoding
        self.encoder_precision = encoder_precision
        super().__init__(policy, env, *args, **kwargs)

    @property
    def encoder_autocast(self) -> torch.dtype | None:
        """The autocast type of the set encoder in the fused step (None: float32)."""
        return ENCODER_AUTOCAST[self.encoder_precision]

    @property
    def uses_fused_update(self) -> bool:
        return self.gate_update == "fused" and supports_fused_update(self.policy)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        """``TD3.train`` (DDPG: one critic, no delay, no noise) plus the Multi-ReenGAGE term, fused.

        Logs the same keys as the reference path.
        """
        if not self.uses_fused_update:
            super().train(gradient_steps, batch_size)
            return
        policy = self.policy
        actor, critic = policy.actor, policy.critic
        policy.set_training_mode(True)
        self._update_learning_rate([actor.optimizer, critic.optimizer])
        alpha = self.reengage_alpha
        with_term = self.reengage_active
        autocast_dtype = self.encoder_autocast
        actor_losses, critic_losses, term_losses = [], [], []
        buffer = self.replay_buffer
        assert buffer is not None
        for _ in range(gradient_steps):
            self._n_updates += 1
            batch = buffer.sample(batch_size, env=self._vec_normalize_env)
            if with_term:
                item_rewards_of(batch)  # refuses a buffer without R_item before any work
            pairs, next_pairs = batch_pairs(batch)
            target = target_terms(self, batch, next_pairs, with_term, autocast_dtype)
            terms = critic_terms(
                self, batch, pairs, target, with_term, graph_for_gate_loss=alpha > 0, autocast_dtype=autocast_dtype
            )
            loss = terms.td_loss if terms.gate_loss is None or alpha == 0 else terms.td_loss + alpha * terms.gate_loss
            critic.optimizer.zero_grad()
            loss.backward()
            critic.optimizer.step()
            critic_losses.append(terms.td_loss.item())
            if terms.gate_loss is not None:
                term_losses.append(terms.gate_loss.item())

            if self._n_updates % self.policy_delay == 0:
                shared = terms.pooled if self.actor_encoding == "shared" else None
                loss_actor = actor_loss(self, batch, pairs, shared, autocast_dtype)
                actor_losses.append(loss_actor.item())
                actor.optimizer.zero_grad()
                loss_actor.backward(inputs=list(actor.parameters()))
                actor.optimizer.step()
                # SB3's arithmetic, so that the fused and the reference update stay comparable bit for bit
                for online, target_net in ((critic, policy.critic_target), (actor, policy.actor_target)):
                    polyak_update(
                        [p.data for p in online.parameters()],
                        [p.data for p in target_net.parameters()],
                        self.tau,
                        sb3_rounding=True,
                    )

        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if actor_losses:
            self.logger.record("train/actor_loss", np.mean(actor_losses))
        self.logger.record("train/critic_loss", np.mean(critic_losses))
        if term_losses:
            self.logger.record("train/reengage_loss", float(np.mean(term_losses)))
            self.logger.record("train/reengage_masked_fraction", 0.0)


class MultiReenGAGEDDPG(FusedGateTrainer, ReferenceMultiReenGAGEDDPG):
    """stable-baselines3 DDPG on goal sets with the Multi-ReenGAGE term, trained fused (alpha 0: plain DDPG)."""


class MultiReenGAGETD3(FusedGateTrainer, ReferenceMultiReenGAGETD3):
    """stable-baselines3 TD3 on goal sets with the Multi-ReenGAGE term, trained fused (alpha 0: plain TD3)."""
