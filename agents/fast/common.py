"""Pure pieces every fast update shares: target freezing, the critic's heads with goal leaves, the term
from its goal gradients, the critic step, optimiser flags and the loss log.

Each function takes what it reads as arguments (networks, batch, optimisers, settings) and returns what
it computes; the SB3 shells of :mod:`reengage.agents.fast` only gather those arguments.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from stable_baselines3.common.policies import BasePolicy
from torch import Tensor, nn

from reengage import losses

from ..goal_autograd import ObsDict, critic_goal_gradients, target_value_and_goal_gradient, with_leaf
from ..goal_gradient import TermInputs
from ..targets import td_target

# modules whose behaviour depends on train/eval mode; a policy holding one keeps SB3's switching
_MODE_SENSITIVE = (nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.modules.dropout._DropoutNd)

Logged = dict[str, list[Tensor]]


def freeze(module: nn.Module) -> None:
    """Stop autograd from recording graphs into ``module``'s parameters (target networks)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)


@dataclass
class GoalGradientTerm:
    """The unweighted term (summed over heads) and the tensors it was computed from.

    ``mask`` is the share of critic heads whose row is matched, a (B, 1) column (the sparse mask
    ``1[R = c_low]``, times the one-sided rule's kept share), or ``None`` when every row is matched.
    """

    loss: Tensor
    q_goal_grads: list[Tensor]
    target_goal_grad: Tensor
    mask: Tensor | None

    @classmethod
    def of(cls, inputs: TermInputs, q_goal_grads: list[Tensor], target_goal_grad: Tensor) -> GoalGradientTerm:
        """Eq. 8.9 / 8.8 on the given goal gradients (:func:`reengage.losses.goal_gradient_residuals`)."""
        residuals = inputs.residuals(q_goal_grads, target_goal_grad)
        return cls(losses.goal_gradient_loss(residuals), q_goal_grads, target_goal_grad, residuals.matched)

    @property
    def masked_fraction(self) -> Tensor:
        """Fraction of transitions whose gradient is not matched, as a 0-d tensor."""
        if self.mask is None:
            return torch.zeros((), device=self.loss.device)
        return 1.0 - self.mask.mean()


def critic_heads(
    features: Callable[[ObsDict], Tensor],
    q_networks: Sequence[nn.Module],
    observations: ObsDict,
    actions: Tensor,
    goal_key: str | None,
) -> tuple[list[Tensor], list[Tensor]]:
    """Q-values of each critic head, and (if ``goal_key``) one goal leaf per head that they depend on.

    Each head gets a leaf of its own so that one ``autograd.grad`` call returns the per-head goal
    gradients. Without ``goal_key`` the heads share one feature pass, as SB3's critic does.
    """
    if goal_key is None:
        shared = torch.cat([features(observations), actions], dim=1)
        return [q_net(shared) for q_net in q_networks], []
    values, leaves = [], []
    for q_net in q_networks:
        obs, goal = with_leaf(observations, goal_key)
        values.append(q_net(torch.cat([features(obs), actions], dim=1)))
        leaves.append(goal)
    return values, leaves


@dataclass
class CriticLosses:
    """The TD loss, the term (None when off) and the critic's Q-values on one batch."""

    td_loss: Tensor
    term: GoalGradientTerm | None
    q_values: list[Tensor]


def actor_critic_losses(
    critic: Any,
    target_value: Callable[[ObsDict], Tensor],
    batch: Any,
    gamma: float,
    td_scale: float,
    goal_key: str,
    term_inputs: TermInputs | None,
) -> CriticLosses:
    """``td_scale * sum_j MSE(Q_j, y)`` and, with ``term_inputs``, the ReenGAGE term (TD3, DDPG, SAC).

    One target forward gives the TD target ``y`` and its total goal gradient; one forward of SB3's
    ``ContinuousCritic`` (``critic``) gives the TD loss and the critic's goal gradients.
    ``target_value`` forms the algorithm's target value at s' from observations.
    """
    with_term = term_inputs is not None
    next_value, target_goal_grad = target_value_and_goal_gradient(
        target_value, batch.next_observations, goal_key, with_term
    )
    target_q = td_target(batch, gamma, next_value)
    q_values, goal_leaves = critic_heads(
        lambda obs: critic.extract_features(obs, critic.features_extractor),
        critic.q_networks,
        batch.observations,
        batch.actions,
        goal_key if with_term else None,
    )
    td_loss = td_scale * sum(F.mse_loss(q, target_q) for q in q_values)
    assert isinstance(td_loss, Tensor)
    if term_inputs is None:
        return CriticLosses(td_loss, None, q_values)
    assert target_goal_grad is not None
    term = GoalGradientTerm.of(term_inputs, critic_goal_gradients(q_values, goal_leaves), target_goal_grad)
    return CriticLosses(td_loss, term, q_values)


def critic_update(
    optimizer: torch.optim.Optimizer,
    td_loss: Tensor,
    term: GoalGradientTerm | None,
    alpha: float,
    logged: Logged,
    td_key: str = "train/critic_loss",
) -> None:
    """One optimiser step on ``L_TD + alpha * L_goal_gradient``, and the losses for the log."""
    loss = td_loss if term is None else td_loss + alpha * term.loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    log_term(logged, td_key, td_loss, term)


def log_term(logged: Logged, td_key: str, td_loss: Tensor, term: GoalGradientTerm | None) -> None:
    """Append this step's TD loss and, when computed, the term and its unmatched share (device tensors)."""
    logged[td_key].append(td_loss.detach())
    if term is not None:
        logged["train/reengage_loss"].append(term.loss.detach())
        logged["train/reengage_masked_fraction"].append(term.masked_fraction.detach())


def record_losses(logger: Any, logged: Logged) -> None:
    """One host read-back for all the losses of a ``train()`` call."""
    for key, values in logged.items():
        if values:
            logger.record(key, float(torch.stack(values).mean()))


def prepare_optimisers(optimisers: Sequence[torch.optim.Optimizer]) -> None:
    """Fused Adam (one kernel per step over all parameters, on CPU and CUDA alike), foreach otherwise.

    Called at every ``train()``: after ``load()`` the optimiser state dicts (and their param-group
    flags) are replaced.
    """
    for optimiser in optimisers:
        for group in optimiser.param_groups:
            if isinstance(optimiser, torch.optim.Adam) and not group.get("fused"):
                group["foreach"], group["fused"] = None, True
            elif not isinstance(optimiser, torch.optim.Adam) and group.get("foreach") is None:
                group["foreach"] = True


def set_training_mode(policy: BasePolicy, mode: bool) -> None:
    """``policy.set_training_mode(mode)`` only when the mode changes (bound to MLP policies)."""
    if policy.training != mode:
        type(policy).set_training_mode(policy, mode)


def memoise_training_mode(policy: BasePolicy) -> None:
    """Make ``policy.set_training_mode`` a no-op when the mode does not change (MLP policies only).

    SB3 calls it at every environment step and each call walks every sub-module. A bound method, not a
    closure, so that ``copy.deepcopy(policy)`` rebinds it to the copy.
    """
    if any(isinstance(module, _MODE_SENSITIVE) for module in policy.modules()):
        return
    policy.set_training_mode = types.MethodType(set_training_mode, policy)
