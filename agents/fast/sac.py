"""The fast SAC agent (App. G.5): a thin SB3 shell around pure update functions.

The target is ``min_j Q'_j(s', a') - ent_coef * log pi(a' | s')`` with ``a'`` reparameterised; its goal
gradient (the term's target) flows through the action and the entropy term. One target forward serves
the TD target and the goal gradient, so the term uses the TD target's action sample (the SB3 path's
mixin draws a second one from its private generator).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..goal_autograd import ObsDict
from ..sac import ReenGAGESAC
from .common import GoalGradientTerm, Logged, actor_critic_losses, critic_update, prepare_optimisers, record_losses
from .trainer import FastTrainer

# (actor, critic, observations, policy actions, their log-probabilities, entropy coefficient, actor parameters)
# -> the actor loss, after the actor's optimiser step
ActorUpdate = Callable[[Any, Any, ObsDict, Tensor, Tensor, Tensor, list[Tensor]], Tensor]


def entropy_coefficient_step(
    log_ent_coef: Tensor, optimizer: torch.optim.Optimizer, log_prob: Tensor, target_entropy: float
) -> tuple[Tensor, Tensor]:
    """SB3's update of a learned entropy coefficient; returns the coefficient read before it (as SB3 uses it)
    and the loss."""
    ent_coef = torch.exp(log_ent_coef.detach())
    ent_coef_loss = -(log_ent_coef * (log_prob + target_entropy).detach()).mean()
    optimizer.zero_grad()
    ent_coef_loss.backward()
    optimizer.step()
    return ent_coef, ent_coef_loss.detach()


def sac_target_value(actor: Any, critic_target: Any, next_obs: ObsDict, ent_coef: Tensor) -> Tensor:
    """``min_j Q'_j(s', a') - ent_coef * log pi(a' | s')`` with ``a' ~ pi(. | s')`` reparameterised, (B, 1)."""
    next_actions, next_log_prob = actor.action_log_prob(next_obs)
    next_q = torch.cat(critic_target(next_obs, next_actions), dim=1).min(dim=1, keepdim=True).values
    return next_q - ent_coef * next_log_prob.reshape(-1, 1)


def actor_update(
    actor: Any,
    critic: Any,
    observations: Any,
    actions_pi: Tensor,
    log_prob: Tensor,
    ent_coef: Tensor,
    parameters: list[Tensor],
) -> Tensor:
    """SAC's actor step on ``mean(ent_coef * log pi - min_j Q_j(s, a_pi))``, back-propagated into the actor only."""
    min_qf_pi = torch.cat(critic(observations, actions_pi), dim=1).min(dim=1, keepdim=True).values
    actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
    actor.optimizer.zero_grad()
    actor_loss.backward(inputs=parameters)  # the critic's weight gradients would be thrown away
    actor.optimizer.step()
    return actor_loss.detach()


def train_entropy_regularised(agent: Any, gradient_steps: int, batch_size: int, update_actor: ActorUpdate) -> None:
    """The gradient steps of SAC and of TQC (sb3-contrib follows SAC's order of draws and optimiser steps): per step,
    the policy's action and log-probability, the entropy coefficient's step, the critic's step through
    ``agent.critic_loss`` (the algorithm's TD loss and its ReenGAGE term), ``update_actor``, the Polyak update."""
    optimisers = [agent.actor.optimizer, agent.critic.optimizer]
    if agent.ent_coef_optimizer is not None:
        optimisers.append(agent.ent_coef_optimizer)
    prepare_optimisers(optimisers)
    agent._update_learning_rate(optimisers)
    actor_params: list[Tensor] = list(agent.actor.parameters())
    logged: Logged = {
        key: []
        for key in (
            "train/ent_coef",
            "train/actor_loss",
            "train/critic_loss",
            "train/ent_coef_loss",
            "train/reengage_loss",
            "train/reengage_masked_fraction",
        )
    }
    buffer = agent.replay_buffer
    assert buffer is not None
    for gradient_step in range(gradient_steps):
        batch = buffer.sample(batch_size, env=agent._vec_normalize_env)
        if agent.use_sde:
            # gSDE: a fresh exploration matrix for this step, as SB3 draws it (the term's target uses it too)
            agent.actor.reset_noise()
        agent._log_diagnostics(batch, agent._n_updates + gradient_step)
        # the same draws in the same order as SB3: the policy's action first, then the target's
        actions_pi, log_prob = agent.actor.action_log_prob(batch.observations)
        log_prob = log_prob.reshape(-1, 1)
        if agent.ent_coef_optimizer is not None and agent.log_ent_coef is not None:
            ent_coef, ent_coef_loss = entropy_coefficient_step(
                agent.log_ent_coef, agent.ent_coef_optimizer, log_prob, float(agent.target_entropy)
            )
            logged["train/ent_coef_loss"].append(ent_coef_loss)
        else:
            ent_coef = agent.ent_coef_tensor
        logged["train/ent_coef"].append(ent_coef.detach().reshape(()))
        td_loss, term = agent.critic_loss(batch, ent_coef)
        critic_update(agent.critic.optimizer, td_loss, term, agent.reengage_alpha, logged)
        logged["train/actor_loss"].append(
            update_actor(agent.actor, agent.critic, batch.observations, actions_pi, log_prob, ent_coef, actor_params)
        )
        if gradient_step % agent.target_update_interval == 0:
            agent._polyak_update()
    agent._n_updates += gradient_steps
    agent.logger.record("train/n_updates", agent._n_updates, exclude="tensorboard")
    record_losses(agent.logger, logged)


class FastReenGAGESAC(FastTrainer, ReenGAGESAC):
    """:class:`~reengage.agents.ReenGAGESAC` with the fast ``train()`` (see :mod:`reengage.agents.fast`)."""

    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.critic, self.critic_target)]

    def _fast_unsupported(self) -> list[str]:
        unsupported = []
        if not hasattr(self.critic, "q_networks"):
            unsupported.append(f"a critic without SB3's q_networks ({type(self.critic).__name__})")
        if self.batch_norm_stats:
            unsupported.append("batch-norm statistics in the critic")
        return unsupported

    def critic_loss(self, batch: Any, ent_coef: Tensor) -> tuple[Tensor, GoalGradientTerm | None]:
        """SAC's TD loss (with SB3's factor 1/2) and, when active, the unweighted ReenGAGE term; one target forward."""
        result = actor_critic_losses(
            self.critic,
            lambda obs: sac_target_value(self.actor, self.critic_target, obs, ent_coef),
            batch,
            self.gamma,
            0.5,
            self.reengage_goal_key,
            self._fast_term_inputs(batch),
        )
        return self._losses_after_diagnostics(result)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        train_entropy_regularised(self, gradient_steps, batch_size, actor_update)
