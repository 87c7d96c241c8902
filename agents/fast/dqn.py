"""The fast DQN agent (App. G.2): a thin SB3 shell around a pure loss function.

One target forward gives the hard-max TD target (Eq. G.10, or the soft one of Eq. G.11 with
``reengage_soft_value_target``) and the goal gradient of the soft target (Eq. G.9). The target network
update stays SB3's (``_on_step``, every ``target_update_interval`` steps); the gradient clip of the
combined gradient is :class:`~reengage.agents.dqn.DQNGoalGradient`'s step pre-hook.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reengage import losses

from ..dqn import ReenGAGEDQN
from ..goal_autograd import ObsDict, critic_goal_gradients, target_value_and_goal_gradient, with_leaf
from ..goal_gradient import TermInputs
from ..targets import td_target
from .common import CriticLosses, GoalGradientTerm, Logged, critic_update, prepare_optimisers, record_losses
from .trainer import FastTrainer


def dqn_losses(
    q_net: nn.Module,
    q_net_target: nn.Module,
    batch: Any,
    gamma: float,
    tau: float,
    soft_value_target: bool,
    goal_key: str,
    term_inputs: TermInputs | None,
) -> CriticLosses:
    """DQN's Huber TD loss on the hard max target (Eq. G.10; the soft one of Eq. G.11 with ``soft_value_target``)
    and, with ``term_inputs``, the unweighted ReenGAGE term on the soft target's goal gradient (Eq. G.9, G.10).

    Args:
        q_net, q_net_target: the online and the (frozen) target Q-network, ``obs -> (B, n_actions)``.
        tau: temperature of the soft target (Eq. G.9; 0 is the hard max).
        soft_value_target: the value term uses the soft target too (Eq. G.11) instead of the hard max.
    """
    with_term = term_inputs is not None
    next_q: list[Tensor] = []

    def soft_target(obs: ObsDict) -> Tensor:
        next_q.append(q_net_target(obs))
        return losses.soft_max_target(next_q[-1], tau)

    soft_value, target_goal_grad = target_value_and_goal_gradient(
        soft_target, batch.next_observations, goal_key, with_term
    )
    if soft_value_target and tau > 0:
        next_value = soft_value
    else:
        next_value = next_q[-1].detach().max(dim=1, keepdim=True).values
    target_q = td_target(batch, gamma, next_value)

    obs, goal_leaves = batch.observations, []
    if with_term:
        obs, goal = with_leaf(batch.observations, goal_key)
        goal_leaves = [goal]
    q_values = [torch.gather(q_net(obs), dim=1, index=batch.actions.long())]
    td_loss = F.smooth_l1_loss(q_values[0], target_q)
    if term_inputs is None:
        return CriticLosses(td_loss, None, q_values)
    assert target_goal_grad is not None
    term = GoalGradientTerm.of(term_inputs, critic_goal_gradients(q_values, goal_leaves), target_goal_grad)
    return CriticLosses(td_loss, term, q_values)


class FastReenGAGEDQN(FastTrainer, ReenGAGEDQN):
    """:class:`~reengage.agents.ReenGAGEDQN` with the fast ``train()`` (see :mod:`reengage.agents.fast`)."""

    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.policy.q_net, self.policy.q_net_target)]

    def _fast_unsupported(self) -> list[str]:
        return ["batch-norm statistics in the Q-network"] if self.batch_norm_stats else []

    def critic_loss(self, batch: Any) -> tuple[Tensor, GoalGradientTerm | None]:
        """DQN's Huber TD loss and, when active, the unweighted soft-target ReenGAGE term; one target forward."""
        result = dqn_losses(
            self.q_net,
            self.policy.q_net_target,  # the policy's network (train() of the SB3 path may swap the attribute)
            batch,
            self.gamma,
            self.reengage_tau,
            self.reengage_soft_value_target,
            self.reengage_goal_key,
            self._fast_term_inputs(batch),
        )
        return self._losses_after_diagnostics(result)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        optimiser = self.policy.optimizer
        prepare_optimisers([optimiser])
        self._update_learning_rate(optimiser)
        logged: Logged = {"train/loss": [], "train/reengage_loss": [], "train/reengage_masked_fraction": []}
        buffer = self.replay_buffer
        assert buffer is not None
        for gradient_step in range(gradient_steps):
            batch = buffer.sample(batch_size, env=self._vec_normalize_env)
            self._log_diagnostics(batch, self._n_updates + gradient_step)
            # step() runs DQNGoalGradient's pre-hook, which clips the combined gradient to max_grad_norm
            critic_update(optimiser, *self.critic_loss(batch), self.reengage_alpha, logged, td_key="train/loss")
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        record_losses(self.logger, logged)
