"""The fast TQC agent: a thin SB3 shell around pure update functions (the target as in :mod:`reengage.agents.tqc`).

The order of the random draws and of the optimiser steps is sb3-contrib's ``TQC.train``: the policy's action
at s, the entropy coefficient's step, the target action at s', the critic step on the quantile Huber loss
(plus ``alpha`` times the term), the actor step on ``mean(ent_coef log pi - mean of all quantiles)``, the
Polyak update. One target forward serves the TD target's truncated quantiles and the term's goal gradient
(of their mean minus the entropy term), so the term uses the TD target's action sample; the SB3 path's mixin
draws a second one from its private generator.
"""

from __future__ import annotations

from typing import Any

import torch
from sb3_contrib.common.utils import quantile_huber_loss
from torch import Tensor, nn

from ..goal_autograd import critic_goal_gradients, with_leaf
from ..goal_gradient import TermInputs
from ..targets import td_target
from ..tqc import ReenGAGETQC, quantile_means, truncated_quantiles
from .common import (
    CriticLosses,
    GoalGradientTerm,
    critic_heads,
)
from .sac import train_entropy_regularised
from .trainer import FastTrainer


def tqc_target_quantiles(
    actor: Any, critic_target: Any, next_obs: dict[str, Tensor], ent_coef: Tensor, drop_per_net: int
) -> Tensor:
    """``z_(i)(s', a') - ent_coef * log pi(a' | s')`` for the kept (truncated) quantiles, (B, N * (M - k))."""
    next_actions, next_log_prob = actor.action_log_prob(next_obs)
    kept = truncated_quantiles(critic_target(next_obs, next_actions), drop_per_net)
    return kept - ent_coef * next_log_prob.reshape(-1, 1)


def tqc_critic_losses(
    actor: Any,
    critic: Any,
    critic_target: Any,
    batch: Any,
    ent_coef: Tensor,
    drop_per_net: int,
    gamma: float,
    goal_key: str,
    term_inputs: TermInputs | None,
) -> CriticLosses:
    """TQC's quantile Huber loss and, with ``term_inputs``, the ReenGAGE term; ``q_values`` are the nets' means.

    The term's target is the total goal gradient of the mean of the target quantiles (the TD target's own
    sample); each net's head is the mean of its quantiles.
    """
    with_term = term_inputs is not None
    if with_term:
        next_obs, next_goal = with_leaf(batch.next_observations, goal_key)
        with torch.enable_grad():
            target = tqc_target_quantiles(actor, critic_target, next_obs, ent_coef, drop_per_net)
            (target_goal_grad,) = torch.autograd.grad(target.mean(dim=1).sum(), next_goal)
        target = target.detach()
    else:
        with torch.no_grad():
            target = tqc_target_quantiles(actor, critic_target, batch.next_observations, ent_coef, drop_per_net)
    target_quantiles = td_target(batch, gamma, target).unsqueeze(1)  # (B, 1, kept): broadcasts over the nets
    quantiles, goal_leaves = critic_heads(
        lambda obs: critic.extract_features(obs, critic.features_extractor),
        critic.q_networks,
        batch.observations,
        batch.actions,
        goal_key if with_term else None,
    )
    current = torch.stack(quantiles, dim=1)  # (B, N, M), as the critic's forward stacks them
    td_loss = quantile_huber_loss(current, target_quantiles, sum_over_quantiles=False)
    q_values = quantile_means(current)
    if term_inputs is None:
        return CriticLosses(td_loss, None, q_values)
    heads = [net_quantiles.mean(dim=1, keepdim=True) for net_quantiles in quantiles]
    term = GoalGradientTerm.of(term_inputs, critic_goal_gradients(heads, goal_leaves), target_goal_grad)
    return CriticLosses(td_loss, term, q_values)


def tqc_actor_update(
    actor: Any,
    critic: Any,
    observations: Any,
    actions_pi: Tensor,
    log_prob: Tensor,
    ent_coef: Tensor,
    parameters: list[Tensor],
) -> Tensor:
    """TQC's actor step on ``mean(ent_coef * log pi - mean over nets and quantiles of Z(s, a_pi))``."""
    qf_pi = critic(observations, actions_pi).mean(dim=2).mean(dim=1, keepdim=True)
    actor_loss = (ent_coef * log_prob - qf_pi).mean()
    actor.optimizer.zero_grad()
    actor_loss.backward(inputs=parameters)  # the critic's weight gradients would be thrown away
    actor.optimizer.step()
    return actor_loss.detach()


class FastReenGAGETQC(FastTrainer, ReenGAGETQC):
    """:class:`~reengage.agents.ReenGAGETQC` with the fast ``train()`` (see :mod:`reengage.agents.fast`)."""

    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.critic, self.critic_target)]

    def _fast_unsupported(self) -> list[str]:
        return ["batch-norm statistics in the critic"] if self.batch_norm_stats else []

    def critic_loss(self, batch: Any, ent_coef: Tensor) -> tuple[Tensor, GoalGradientTerm | None]:
        """The quantile Huber loss and, when active, the unweighted ReenGAGE term; one target forward."""
        result = tqc_critic_losses(
            self.actor,
            self.critic,
            self.critic_target,
            batch,
            ent_coef,
            self.top_quantiles_to_drop_per_net,
            self.gamma,
            self.reengage_goal_key,
            self._fast_term_inputs(batch),
        )
        return self._losses_after_diagnostics(result)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        train_entropy_regularised(self, gradient_steps, batch_size, tqc_actor_update)
