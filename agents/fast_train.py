"""The fast training path: SB3-compatible agents whose ``train()`` is plain tensor code.

``FastReenGAGEDDPG``, ``FastReenGAGETD3``, ``FastReenGAGESAC`` and ``FastReenGAGEDQN`` subclass the toolkit's
SB3 agents and replace only the gradient step; rollout collection, callbacks, save/load, checkpoints and evaluation
are the parent's, so everything built on the SB3 classes keeps working. The algorithm is the same
(gradient steps per environment step, hyper-parameters, exploration and target noise); what goes is
overhead:

* TD3 and DDPG with plain ReLU MLPs on flattened box observations (SB3's ``MultiInputPolicy`` and
  ``MlpPolicy``) run a gradient step written by hand (:mod:`reengage.agents.manual_mlp`): no autograd
  graph, the TD backward and the critic's goal gradient share their products, and the term's weight
  gradients need one large product per step instead of three (``manual_update = False``, or any other
  network, falls back to the autograd form below);
* the ReenGAGE term shares the TD loss's target forward and critic forward
  (:mod:`reengage.agents.fast_goal_gradient`), and the target networks are frozen;
* the actor loss back-propagates into the actor's parameters only (``backward(inputs=...)``): the
  critic's weight gradients, which SB3 computes and then discards, are never formed;
* target networks follow with one fused ``torch._foreach_lerp_`` over all parameters, and Adam runs
  its fused implementation;
* ``set_training_mode`` only acts when the mode changes (SB3 calls it at every environment step and
  each call walks every sub-module);
* losses are read back to the host once per ``train()`` call, not once per loss;
* the HER buffer is :class:`reengage.agents.her_replay.FastHerReplayBuffer` when that module exists.

Numerically the update equals the SB3 path's to float rounding (``lerp`` and ``foreach`` Adam round
differently from SB3's ``mul``/``add`` and single-tensor Adam). One documented difference with the
ReenGAGE term on: the term's target goal gradient uses **the same** TD3 target-policy noise sample as
the TD target (one shared target forward), where the mixin draws a second sample of its own.

Options that this path does not implement refuse with a message naming ``trainer: sb3``.
"""

from __future__ import annotations

import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from stable_baselines3 import HerReplayBuffer
from torch import Tensor, nn

from reengage import losses

from .fast_goal_gradient import (
    GoalGradientTerm,
    critic_goal_gradients,
    critic_heads,
    freeze,
    goal_columns,
    goal_gradient_term,
    relu_mlp_layers,
    relu_mlp_with_input_gradient,
    target_value_and_goal_gradient,
)
from .dqn import ReenGAGEDQN
from .manual_mlp import (
    ReluMLP,
    flat_input,
    flat_input_keys,
    mlp_backward,
    relu_mlp_forward,
    value_head_backward,
    value_input_gradient,
    value_pre_activation_gradients,
)
from .diagnostics import collect_goal_gradient_diagnostics
from .goal_gradient import ObsDict, with_leaf
from .sac import ReenGAGESAC
from .td3 import ReenGAGEDDPG, ReenGAGETD3

# modules whose behaviour depends on train/eval mode; a policy holding one keeps SB3's switching
_MODE_SENSITIVE = (nn.modules.batchnorm._BatchNorm, nn.Dropout, nn.modules.dropout._DropoutNd)


def fast_her_buffer_class() -> type | None:
    """The vectorised HER buffer of branch issue-9a if this install has it, else ``None``."""
    try:
        from .her_replay import FastHerReplayBuffer
    except ImportError:
        return None
    return FastHerReplayBuffer


class FastTrainMixin:
    """What every fast agent shares: set-up, fused target updates, logging. Place it first in the bases."""

    _fast_excluded = ["_fast_online_params", "_fast_target_params", "_manual_plan_cache"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("replay_buffer_class") is HerReplayBuffer:
            fast_buffer = fast_her_buffer_class()
            if fast_buffer is not None:
                kwargs["replay_buffer_class"] = fast_buffer
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ per-algorithm pieces
    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) module pairs that the Polyak update moves together."""
        raise NotImplementedError

    def _fast_unsupported(self) -> list[str]:
        """Settings this fast path does not implement (each a short phrase)."""
        critic = getattr(self, "critic", None)
        if critic is not None and not hasattr(critic, "q_networks"):
            return [f"a critic without SB3's q_networks ({type(critic).__name__})"]
        return []

    # ------------------------------------------------------------------ set-up
    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        unsupported = self._fast_unsupported()
        if unsupported:
            raise ValueError(
                f"the fast trainer does not support {', '.join(unsupported)}; use the stock SB3 path "
                "(config key trainer: sb3, or train.py --trainer sb3)"
            )
        for _, target in self._fast_target_pairs():
            freeze(target)
        online, targets = [], []
        for source, target in self._fast_target_pairs():
            online += list(source.parameters())
            targets += list(target.parameters())
        self._fast_online_params: list[Tensor] = online
        self._fast_target_params: list[Tensor] = targets
        _memoise_training_mode(self.policy)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + self._fast_excluded  # type: ignore[misc]

    def _prepare_optimisers(self, optimisers: Sequence[torch.optim.Optimizer]) -> None:
        # after load() the optimiser state dicts (and their param-group flags) are replaced: set again
        # (fused Adam: one kernel per step over all parameters, on CPU and CUDA alike)
        for optimiser in optimisers:
            for group in optimiser.param_groups:
                if isinstance(optimiser, torch.optim.Adam) and not group.get("fused"):
                    group["foreach"], group["fused"] = None, True
                elif not isinstance(optimiser, torch.optim.Adam) and group.get("foreach") is None:
                    group["foreach"] = True

    def _polyak_update(self) -> None:
        """``target <- (1 - tau) target + tau online`` for every parameter, in one fused call."""
        with torch.no_grad():
            torch._foreach_lerp_(self._fast_target_params, self._fast_online_params, self.tau)

    # ------------------------------------------------------------------ the term
    def _goal_gradient_diagnostics(
        self, q_goal_grads: list[Tensor], target_goal_grad: Tensor, q_values: list[Tensor], mask: Tensor | None
    ) -> None:
        """Hook for optional diagnostics (goal-gradient norms, cosine, value range); off by default.

        Called once per gradient step with the term's intermediate tensors when the term is computed.
        Implementations must not modify the tensors or the graph (detach before use).
        """

    def _log_diagnostics(self, batch: Any, update_index: int) -> None:
        """Every ``reengage_diagnostics_every`` gradient steps, the goal-gradient diagnostics on this batch.

        The same function as the SB3 path (:func:`~reengage.agents.diagnostics.collect_goal_gradient_diagnostics`,
        before the step, at alpha 0 too); it reads the agent only and restores the private noise generator,
        so training is unchanged. The parameter-gradient split between the TD loss and the term
        (``param_grad_*``) is logged on the SB3 path only: the fast step forms one combined gradient.
        """
        every = self.reengage_diagnostics_every  # type: ignore[attr-defined]
        if every <= 0 or update_index % every != 0:
            return
        values = collect_goal_gradient_diagnostics(self, batch, self._batch_context(batch))  # type: ignore[attr-defined]
        for key, value in values.items():
            self.logger.record_mean(f"reengage_diag/{key}", value)  # type: ignore[attr-defined]

    def _term_tensors(
        self, batch: Any, q_values: list[Tensor], goal_leaves: list[Tensor], target_goal_grad: Tensor
    ) -> GoalGradientTerm:
        return self._term_from_gradients(batch, q_values, critic_goal_gradients(q_values, goal_leaves), target_goal_grad)

    def _term_from_gradients(
        self, batch: Any, q_values: list[Tensor], q_goal_grads: list[Tensor], target_goal_grad: Tensor
    ) -> GoalGradientTerm:
        reward_goal_grad = self._reward_goal_gradient(batch) if self.reengage_mode == "dense" else None  # type: ignore[attr-defined]
        term = goal_gradient_term(
            q_goal_grads,
            target_goal_grad,
            batch.rewards,
            batch.dones,
            self.gamma,
            self.reengage_mode,  # type: ignore[attr-defined]
            self.c_low,  # type: ignore[attr-defined]
            self._dim_weights(target_goal_grad.shape[-1]),  # type: ignore[attr-defined]
            reward_goal_grad,
            self.reengage_matching == "one_sided",  # type: ignore[attr-defined]
        )
        self._goal_gradient_diagnostics(term.q_goal_grads, term.target_goal_grad, q_values, term.mask)
        return term

    def _analytic_heads(self, batch: Any) -> tuple[list[Tensor], list[Tensor]] | None:
        """Q-values and goal gradients in closed form, where the critic allows it (TD3/DDPG); else None."""
        return None

    def _td_and_term(
        self, batch: Any, target_value: Any, td_scale: float
    ) -> tuple[Tensor, GoalGradientTerm | None]:
        """The TD loss ``td_scale * sum_j MSE(Q_j, y)`` and, when active, the unweighted ReenGAGE term.

        One target forward gives the TD target and its goal gradient; one critic forward gives the TD
        loss and the critic's goal gradients. Each algorithm passes only how its target value is formed.
        """
        with_term = self.reengage_active  # type: ignore[attr-defined]
        next_value, target_goal_grad = target_value_and_goal_gradient(
            target_value, batch.next_observations, self.reengage_goal_key, with_term  # type: ignore[attr-defined]
        )
        # n-step buffers give per-transition discounts (as in SB3); the term keeps gamma, as the mixin does
        discounts = batch.discounts if getattr(batch, "discounts", None) is not None else self.gamma  # type: ignore[attr-defined]
        target_q = batch.rewards + (1 - batch.dones) * discounts * next_value
        analytic = self._analytic_heads(batch) if with_term and getattr(self, "analytic_goal_gradient", False) else None
        if analytic is not None:
            q_values, q_goal_grads = analytic
            td_loss = td_scale * sum(F.mse_loss(q, target_q) for q in q_values)
            assert isinstance(td_loss, Tensor) and target_goal_grad is not None
            return td_loss, self._term_from_gradients(batch, q_values, q_goal_grads, target_goal_grad)
        critic = self.critic  # type: ignore[attr-defined]
        q_values, goal_leaves = critic_heads(
            lambda obs: critic.extract_features(obs, critic.features_extractor),
            critic.q_networks,
            batch.observations,
            batch.actions,
            self.reengage_goal_key if with_term else None,  # type: ignore[attr-defined]
        )
        td_loss = td_scale * sum(F.mse_loss(q, target_q) for q in q_values)
        assert isinstance(td_loss, Tensor)
        if not with_term:
            return td_loss, None
        assert target_goal_grad is not None
        return td_loss, self._term_tensors(batch, q_values, goal_leaves, target_goal_grad)

    def _critic_step(self, td_loss: Tensor, term: GoalGradientTerm | None, logged: dict[str, list[Tensor]]) -> None:
        """One critic optimiser step on ``L_TD + alpha * L_goal_gradient``, and the losses for the log."""
        loss = td_loss if term is None else td_loss + self.reengage_alpha * term.loss  # type: ignore[attr-defined]
        critic = self.critic  # type: ignore[attr-defined]
        critic.optimizer.zero_grad()
        loss.backward()
        critic.optimizer.step()
        logged["train/critic_loss"].append(td_loss.detach())
        if term is not None:
            logged["train/reengage_loss"].append(term.loss.detach())
            logged["train/reengage_masked_fraction"].append(term.masked_fraction.detach())

    def _record_losses(self, logged: dict[str, list[Tensor]]) -> None:
        """One host read-back for all the losses of this ``train()`` call."""
        for key, values in logged.items():
            if values:
                self.logger.record(key, float(torch.stack(values).mean()))


def set_training_mode(policy: nn.Module, mode: bool) -> None:
    """``policy.set_training_mode(mode)`` only when the mode changes (bound to MLP policies)."""
    if policy.training != mode:
        type(policy).set_training_mode(policy, mode)


def _memoise_training_mode(policy: nn.Module) -> None:
    """Make ``policy.set_training_mode`` a no-op when the mode does not change (MLP policies only).

    A bound method, not a closure, so that ``copy.deepcopy(policy)`` rebinds it to the copy.
    """
    if any(isinstance(module, _MODE_SENSITIVE) for module in policy.modules()):
        return
    policy.set_training_mode = types.MethodType(set_training_mode, policy)  # type: ignore[method-assign]


@dataclass(frozen=True)
class ManualTD3Plan:
    """What the hand-written TD3/DDPG step needs: the networks as :class:`ReluMLP` views and the input layout."""

    actor: ReluMLP
    actor_target: ReluMLP
    critics: tuple[ReluMLP, ...]
    critic_targets: tuple[ReluMLP, ...]
    keys: tuple[str, ...] | None  # observation keys in the extractor's order (None: a flat box)
    goal_columns: slice | None  # where the goal sits in the flattened observation (None: no goal key)
    action_columns: slice  # where the action sits in the critic's input


def manual_td3_plan(policy: Any, observation_space: Any, goal_key: str | None) -> ManualTD3Plan | None:
    """The plan for SB3's TD3 policy when every network is a plain ReLU MLP on flattened float boxes, else None."""
    from stable_baselines3.common.policies import BaseModel
    from stable_baselines3.td3.policies import Actor, ContinuousCritic

    actor, actor_target, critic, critic_target = policy.actor, policy.actor_target, policy.critic, policy.critic_target
    if type(actor) is not Actor or type(actor_target) is not Actor or type(critic) is not ContinuousCritic \
            or type(critic_target) is not ContinuousCritic:
        return None  # subclasses may change the forward
    if any(type(module).extract_features is not BaseModel.extract_features for module in (actor, critic)):
        return None
    layouts = {flat_input_keys(module.features_extractor, observation_space)
               for module in (actor, actor_target, critic, critic_target)}
    if len(layouts) != 1 or False in layouts:
        return None
    keys = layouts.pop()
    assert keys is not False
    nets = [ReluMLP.of(actor.mu), ReluMLP.of(actor_target.mu)]
    critics = [ReluMLP.of(q_net) for q_net in critic.q_networks]
    critic_targets = [ReluMLP.of(q_net) for q_net in critic_target.q_networks]
    if any(net is None or not net.tanh_output for net in nets):
        return None
    if any(net is None or net.tanh_output or net.depth < 2 or net.weights[-1].shape[0] != 1
           for net in (*critics, *critic_targets)) or len(critics) != len(critic_targets):
        return None
    features = actor.features_extractor.features_dim
    columns = None
    if goal_key is not None and keys is not None and goal_key in keys:
        columns = goal_columns(critic.features_extractor, observation_space, goal_key)
    action_dim = critics[0].weights[0].shape[1] - features  # type: ignore[union-attr]
    return ManualTD3Plan(nets[0], nets[1], tuple(critics), tuple(critic_targets), keys,  # type: ignore[arg-type]
                         columns, slice(features, features + action_dim))


class FastTD3Trainer(FastTrainMixin):
    """Fast ``train()`` for TD3 and DDPG (TD3 with one critic, ``policy_delay=1`` and no target noise)."""

    #: compute the critic's goal gradient in closed form for ReLU MLP critics (first-order graph)
    analytic_goal_gradient: bool = False
    #: the whole gradient step written by hand (:mod:`reengage.agents.manual_mlp`, no autograd graph) when
    #: every network is a plain ReLU MLP on flattened boxes; otherwise (or False) the autograd form below
    manual_update: bool = True

    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.critic, self.critic_target), (self.actor, self.actor_target)]

    def _fast_unsupported(self) -> list[str]:
        unsupported = super()._fast_unsupported()
        if self.critic_batch_norm_stats or self.actor_batch_norm_stats:
            unsupported.append("batch-norm statistics in the actor or critic")
        if self.policy.share_features_extractor:
            unsupported.append("share_features_extractor=True")
        return unsupported

    def _fast_target_value(self, next_obs: ObsDict, noise: Tensor | None) -> Tensor:
        """``min_j Q'_j(s', clip(pi'(s') + noise, -1, 1))``, the target of TD3 and DDPG, (B, 1)."""
        # reengage_target_derivative="partial" (an ablation): the target action is held fixed in the goal gradient
        actor_obs = next_obs
        if self.reengage_hold_target_action:
            actor_obs = {key: value.detach() for key, value in next_obs.items()}
        next_actions = self.actor_target(actor_obs)
        if noise is not None:
            next_actions = next_actions + noise
        next_q = torch.cat(self.critic_target(next_obs, next_actions.clamp(-1.0, 1.0)), dim=1)
        return next_q.min(dim=1, keepdim=True).values

    def _analytic_heads(self, batch: Any) -> tuple[list[Tensor], list[Tensor]] | None:
        """Q-values and goal gradients of every head in closed form (ReLU MLP critics), else ``None``."""
        critic = self.critic
        columns = goal_columns(critic.features_extractor, self.observation_space, self.reengage_goal_key)  # type: ignore[attr-defined]
        layer_lists = [relu_mlp_layers(q_net) for q_net in critic.q_networks]
        if columns is None or any(layers is None for layers in layer_lists):
            return None
        inputs = torch.cat([critic.extract_features(batch.observations, critic.features_extractor), batch.actions], dim=1)
        outputs = [relu_mlp_with_input_gradient(layers, inputs, columns) for layers in layer_lists]  # type: ignore[arg-type]
        return [q for q, _ in outputs], [gradient for _, gradient in outputs]

    def critic_loss(self, batch: Any) -> tuple[Tensor, GoalGradientTerm | None]:
        """The TD loss of TD3/DDPG and (when active) the unweighted ReenGAGE term on one batch.

        Draws the target-policy noise from torch's global generator as SB3 does (DDPG's is drawn
        and clipped to zero). Both losses come from one target forward and one critic forward.
        """
        noise = self._target_noise(batch)
        return self._td_and_term(batch, lambda obs: self._fast_target_value(obs, noise), td_scale=1.0)

    def _manual_plan(self) -> ManualTD3Plan | None:
        """The hand-written step's plan for this policy (cached per policy object), or None to use autograd."""
        if not self.manual_update or self.analytic_goal_gradient:
            return None
        goal_key = self.reengage_goal_key if self.reengage_active else None  # type: ignore[attr-defined]
        cached = getattr(self, "_manual_plan_cache", None)
        if cached is None or cached[0] is not self.policy or cached[1] != goal_key:
            plan = manual_td3_plan(self.policy, self.observation_space, goal_key)
            if plan is not None and goal_key is not None and plan.goal_columns is None:
                plan = None  # the term needs the goal's columns
            cached = self._manual_plan_cache = (self.policy, goal_key, plan)
        return cached[2]

    def _target_noise(self, batch: Any) -> Tensor | None:
        """TD3's clipped target-policy noise, drawn from torch's global generator as SB3 does (DDPG: zeros)."""
        if self.target_policy_noise <= 0:
            return None
        noise = batch.actions.clone().normal_(0, self.target_policy_noise)
        return noise.clamp(-self.target_noise_clip, self.target_noise_clip)

    def _manual_critic_step(self, plan: ManualTD3Plan, batch: Any, logged: dict[str, list[Tensor]]) -> Tensor:
        """:meth:`critic_loss` and :meth:`_critic_step` written by hand; returns the batch's features.

        The same quantities as the autograd form, in the same order of random draws: the TD target and,
        with the term, the target's total goal gradient from one target forward; the TD loss, the critic's
        goal gradients and all the critic's parameter gradients from one critic forward (see
        :mod:`reengage.agents.manual_mlp` for why one product per layer serves both losses).
        """
        with_term = self.reengage_active  # type: ignore[attr-defined]
        if self.target_policy_noise > 0 and self.target_noise_clip == 0:
            # DDPG: SB3 draws the noise and clips it to exactly zero; draw it (torch's generator advances
            # alike) and leave it out
            batch.actions.clone().normal_(0, self.target_policy_noise)
            noise = None
        else:
            noise = self._target_noise(batch)
        dense = with_term and self.reengage_mode == "dense"  # type: ignore[attr-defined]
        reward_goal_grad = self._reward_goal_gradient(batch) if dense else None  # type: ignore[attr-defined]
        with torch.no_grad():
            # ---- target: y = r + gamma (1 - d) min_j Q'_j(s', clip(pi'(s') + noise)), and d y / d g'
            next_x = flat_input(batch.next_observations, plan.keys)
            next_pi, actor_hidden = relu_mlp_forward(plan.actor_target, next_x)
            noisy = next_pi if noise is None else next_pi + noise
            # (tanh lies in [-1, 1], so without noise the clamp is the identity and passes every gradient)
            next_z = torch.cat([next_x, noisy.clamp(-1.0, 1.0) if noise is not None else noisy], dim=1)
            target_heads = [relu_mlp_forward(net, next_z) for net in plan.critic_targets]
            next_q = torch.cat([q for q, _ in target_heads], dim=1)
            next_value, chosen = next_q.min(dim=1, keepdim=True)
            discounts = batch.discounts if getattr(batch, "discounts", None) is not None else self.gamma
            target_q = batch.rewards + (1 - batch.dones) * discounts * next_value
            target_goal_grad = None
            if with_term:
                assert plan.goal_columns is not None
                input_grad = None
                for j, (net, (_, hidden)) in enumerate(zip(plan.critic_targets, target_heads)):
                    head_grad = value_input_gradient(net, value_pre_activation_gradients(net, hidden), slice(None))
                    if len(target_heads) > 1:  # the min passes the gradient to the chosen head only
                        head_grad = head_grad * (chosen == j)
                    input_grad = head_grad if input_grad is None else input_grad + head_grad
                assert input_grad is not None
                target_goal_grad = input_grad[:, plan.goal_columns]
                if not self.reengage_hold_target_action:  # the total derivative, through pi'(s', g) too
                    action_grad = input_grad[:, plan.action_columns]
                    if noise is not None:
                        action_grad = action_grad * ((noisy >= -1.0) & (noisy <= 1.0))
                    through_actor = mlp_backward(plan.actor_target, actor_hidden, next_pi, action_grad,
                                                 parameters=False, input_columns=plan.goal_columns)
                    assert through_actor is not None
                    target_goal_grad = target_goal_grad + through_actor

            # ---- critic: TD loss and term, one forward, gradients of L_TD + alpha * L_term
            x = flat_input(batch.observations, plan.keys)
            z = torch.cat([x, batch.actions], dim=1)
            heads = [relu_mlp_forward(net, z) for net in plan.critics]
            batch_size = z.shape[0]
            errors = [q - target_q for q, _ in heads]
            td_loss = sum((error * error).mean() for error in errors)
            assert isinstance(td_loss, Tensor)
            jacobians = [value_pre_activation_gradients(net, hidden) for net, (_, hidden) in zip(plan.critics, heads)]
            term_errors: list[Tensor | None] = [None] * len(heads)
            if with_term:
                assert target_goal_grad is not None and plan.goal_columns is not None
                q_goal_grads = [value_input_gradient(net, us, plan.goal_columns)
                                for net, us in zip(plan.critics, jacobians)]
                term_loss, residuals, mask = self._manual_term(batch, q_goal_grads, target_goal_grad, reward_goal_grad)
                alpha = self.reengage_alpha  # type: ignore[attr-defined]
                if alpha > 0:
                    weights = self._dim_weights(target_goal_grad.shape[-1])  # type: ignore[attr-defined]
                    scale = 2.0 * alpha / residuals[0].numel()
                    term_errors = [scale * r if weights is None else (scale * weights) * r for r in residuals]
                self._goal_gradient_diagnostics(q_goal_grads, target_goal_grad, [q for q, _ in heads], mask)
            for net, (_, hidden), us, error, term_error in zip(plan.critics, heads, jacobians, errors, term_errors):
                value_head_backward(net, hidden, us, error * (2.0 / batch_size), term_error, plan.goal_columns)
        self.critic.optimizer.step()
        logged["train/critic_loss"].append(td_loss)
        if with_term:
            logged["train/reengage_loss"].append(term_loss)
            logged["train/reengage_masked_fraction"].append(
                torch.zeros((), device=td_loss.device) if mask is None else 1.0 - mask.mean())
        return x

    def _manual_term(
        self, batch: Any, q_goal_grads: list[Tensor], target_goal_grad: Tensor, reward_goal_grad: Tensor | None
    ) -> tuple[Tensor, list[Tensor], Tensor | None]:
        """Eq. 8.9 (or 8.8) summed over heads, the per-head residuals ``r`` with ``loss = mean(w r^2)``, and the mask.

        The same arithmetic as :func:`reengage.losses.sparse_goal_gradient_loss` (``mask * G - mask * target``)
        and :func:`~reengage.losses.dense_goal_gradient_loss`; ``tests/test_manual_mlp.py`` holds them equal.
        """
        not_done = 1.0 - batch.dones.reshape(-1, 1).to(target_goal_grad.dtype)
        target = self.gamma * not_done * target_goal_grad
        mask = None
        if self.reengage_mode == "dense":  # type: ignore[attr-defined]
            assert reward_goal_grad is not None
            target = reward_goal_grad + target
            residuals = [grad - target for grad in q_goal_grads]
        else:
            mask = (batch.rewards.reshape(-1, 1) == self.c_low).to(batch.rewards.dtype)  # type: ignore[attr-defined]
            masked_target = mask * target
            residuals = [mask * grad - masked_target for grad in q_goal_grads]
        weights = self._dim_weights(target_goal_grad.shape[-1])  # type: ignore[attr-defined]
        if self.reengage_matching == "one_sided":  # type: ignore[attr-defined]
            # rows whose critic goal gradient is already steeper than its target leave the term (per head)
            rows = [losses.weaker_than_target_rows(grad, target, weights) for grad in q_goal_grads]
            residuals = [row * r for row, r in zip(rows, residuals)]
            if mask is not None:  # the logged share of unmatched rows counts them, as on the autograd form
                mask = mask * torch.stack(rows).mean(dim=0)
        squares = [r * r if weights is None else r * r * weights for r in residuals]
        loss = sum(square.mean() for square in squares)
        assert isinstance(loss, Tensor)
        return loss, residuals, mask

    def _manual_actor_step(self, plan: ManualTD3Plan, x: Tensor, logged: dict[str, list[Tensor]]) -> None:
        """``-mean Q_1(s, pi(s))`` back-propagated by hand into the actor only, then its optimiser step."""
        with torch.no_grad():
            actions, actor_hidden = relu_mlp_forward(plan.actor, x)
            critic = plan.critics[0]
            q_values, hidden = relu_mlp_forward(critic, torch.cat([x, actions], dim=1))
            jacobian = value_pre_activation_gradients(critic, hidden)
            action_grad = value_input_gradient(critic, jacobian, plan.action_columns)
            mlp_backward(plan.actor, actor_hidden, actions, action_grad * (-1.0 / x.shape[0]))
        self.actor.optimizer.step()
        logged["train/actor_loss"].append(-q_values.mean())

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        optimisers = [self.actor.optimizer, self.critic.optimizer]
        self._prepare_optimisers(optimisers)
        self._update_learning_rate(optimisers)
        actor_params = list(self.actor.parameters())
        logged: dict[str, list[Tensor]] = {"train/critic_loss": [], "train/actor_loss": [],
                                            "train/reengage_loss": [], "train/reengage_masked_fraction": []}
        plan = self._manual_plan()
        for _ in range(gradient_steps):
            self._n_updates += 1
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            self._log_diagnostics(batch, self._n_updates)
            if plan is not None:
                # (the actor's features are the critic's: both extractors only flatten the same keys)
                features = self._manual_critic_step(plan, batch, logged)
                if self._n_updates % self.policy_delay == 0:
                    self._manual_actor_step(plan, features, logged)
                    self._polyak_update()
                continue
            self._critic_step(*self.critic_loss(batch), logged)

            if self._n_updates % self.policy_delay == 0:
                actor_loss = -self.critic.q1_forward(batch.observations, self.actor(batch.observations)).mean()
                self.actor.optimizer.zero_grad()
                # into the actor only: the critic's weight gradients would be thrown away
                actor_loss.backward(inputs=actor_params)
                self.actor.optimizer.step()
                logged["train/actor_loss"].append(actor_loss.detach())
                self._polyak_update()
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self._record_losses(logged)


class FastReenGAGEDDPG(FastTD3Trainer, ReenGAGEDDPG):
    """:class:`~reengage.agents.ReenGAGEDDPG` with the fast ``train()`` (see :mod:`reengage.agents.fast_train`)."""


class FastReenGAGETD3(FastTD3Trainer, ReenGAGETD3):
    """:class:`~reengage.agents.ReenGAGETD3` with the fast ``train()`` (see :mod:`reengage.agents.fast_train`)."""


class FastSACTrainer(FastTrainMixin):
    """Fast ``train()`` for SAC (App. G.5 target: through the reparameterised action and the entropy term)."""

    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.critic, self.critic_target)]

    def _fast_unsupported(self) -> list[str]:
        unsupported = super()._fast_unsupported()
        if self.batch_norm_stats:
            unsupported.append("batch-norm statistics in the critic")
        return unsupported

    def _entropy_step(self, log_prob: Tensor, logged: dict[str, list[Tensor]]) -> Tensor:
        """SB3's entropy-coefficient update; returns the coefficient read before it (as SB3 uses it)."""
        if self.ent_coef_optimizer is None or self.log_ent_coef is None:
            return self.ent_coef_tensor
        ent_coef = torch.exp(self.log_ent_coef.detach())
        ent_coef_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
        self.ent_coef_optimizer.zero_grad()
        ent_coef_loss.backward()
        self.ent_coef_optimizer.step()
        logged["train/ent_coef_loss"].append(ent_coef_loss.detach())
        return ent_coef

    def _fast_target_value(self, next_obs: ObsDict, ent_coef: Tensor) -> Tensor:
        """``min_j Q'_j(s', a') - ent_coef * log pi(a' | s')`` with ``a' ~ pi(. | s')`` reparameterised, (B, 1)."""
        next_actions, next_log_prob = self.actor.action_log_prob(next_obs)
        next_q = torch.cat(self.critic_target(next_obs, next_actions), dim=1).min(dim=1, keepdim=True).values
        return next_q - ent_coef * next_log_prob.reshape(-1, 1)

    def critic_loss(self, batch: Any, ent_coef: Tensor) -> tuple[Tensor, GoalGradientTerm | None]:
        """SAC's TD loss (with SB3's factor 1/2) and, when active, the unweighted ReenGAGE term; one target forward."""
        return self._td_and_term(batch, lambda obs: self._fast_target_value(obs, ent_coef), td_scale=0.5)

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        optimisers = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimisers.append(self.ent_coef_optimizer)
        self._prepare_optimisers(optimisers)
        self._update_learning_rate(optimisers)
        actor_params = list(self.actor.parameters())
        logged: dict[str, list[Tensor]] = {key: [] for key in (
            "train/ent_coef", "train/actor_loss", "train/critic_loss", "train/ent_coef_loss",
            "train/reengage_loss", "train/reengage_masked_fraction")}
        for gradient_step in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            if self.use_sde:
                # gSDE: a fresh exploration matrix for this step, as SB3 draws it (the term's target uses it too)
                self.actor.reset_noise()
            self._log_diagnostics(batch, self._n_updates + gradient_step)
            # the same draws in the same order as SB3: the policy's action first, then the target's
            actions_pi, log_prob = self.actor.action_log_prob(batch.observations)
            log_prob = log_prob.reshape(-1, 1)
            ent_coef = self._entropy_step(log_prob, logged)
            logged["train/ent_coef"].append(ent_coef.detach().reshape(()))

            self._critic_step(*self.critic_loss(batch, ent_coef), logged)

            min_qf_pi = torch.cat(self.critic(batch.observations, actions_pi), dim=1).min(dim=1, keepdim=True).values
            actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
            self.actor.optimizer.zero_grad()
            actor_loss.backward(inputs=actor_params)  # into the actor only
            self.actor.optimizer.step()
            logged["train/actor_loss"].append(actor_loss.detach())
            if gradient_step % self.target_update_interval == 0:
                self._polyak_update()
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self._record_losses(logged)


class FastReenGAGESAC(FastSACTrainer, ReenGAGESAC):
    """:class:`~reengage.agents.ReenGAGESAC` with the fast ``train()`` (see :mod:`reengage.agents.fast_train`)."""


class FastDQNTrainer(FastTrainMixin):
    """Fast ``train()`` for DQN (App. G.2): one target forward gives the hard-max TD target (Eq. G.10, or
    the soft one of Eq. G.11) and the goal gradient of the soft target (Eq. G.9).

    The target network update stays SB3's (``_on_step``, every ``target_update_interval`` steps).
    """

    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.q_net, self.q_net_target)]

    def _fast_unsupported(self) -> list[str]:
        unsupported = []
        if self.batch_norm_stats:
            unsupported.append("batch-norm statistics in the Q-network")
        return unsupported

    def critic_loss(self, batch: Any) -> tuple[Tensor, GoalGradientTerm | None]:
        """DQN's Huber TD loss and, when active, the unweighted soft-target ReenGAGE term; one target forward."""
        from reengage import losses

        with_term = self.reengage_active  # type: ignore[attr-defined]
        tau = self.reengage_tau  # type: ignore[attr-defined]
        target_net = self.policy.q_net_target  # the policy's network (train() of the SB3 path may swap the attribute)
        next_q: list[Tensor] = []

        def soft_target(obs: ObsDict) -> Tensor:
            next_q.append(target_net(obs))
            return losses.soft_max_target(next_q[-1], tau)

        soft_value, target_goal_grad = target_value_and_goal_gradient(
            soft_target, batch.next_observations, self.reengage_goal_key, with_term  # type: ignore[attr-defined]
        )
        if self.reengage_soft_value_target and tau > 0:  # type: ignore[attr-defined]
            next_value = soft_value
        else:
            next_value = next_q[-1].detach().max(dim=1, keepdim=True).values
        discounts = batch.discounts if getattr(batch, "discounts", None) is not None else self.gamma
        target_q = batch.rewards + (1 - batch.dones) * discounts * next_value

        obs, goal_leaves = batch.observations, []
        if with_term:
            obs, goal = with_leaf(batch.observations, self.reengage_goal_key)  # type: ignore[attr-defined]
            goal_leaves = [goal]
        q_values = [torch.gather(self.q_net(obs), dim=1, index=batch.actions.long())]
        td_loss = F.smooth_l1_loss(q_values[0], target_q)
        if not with_term:
            return td_loss, None
        assert target_goal_grad is not None
        return td_loss, self._term_tensors(batch, q_values, goal_leaves, target_goal_grad)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        optimiser = self.policy.optimizer
        self._prepare_optimisers([optimiser])
        self._update_learning_rate(optimiser)
        logged: dict[str, list[Tensor]] = {"train/loss": [], "train/reengage_loss": [],
                                            "train/reengage_masked_fraction": []}
        for gradient_step in range(gradient_steps):
            batch = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            self._log_diagnostics(batch, self._n_updates + gradient_step)
            td_loss, term = self.critic_loss(batch)
            loss = td_loss if term is None else td_loss + self.reengage_alpha * term.loss  # type: ignore[attr-defined]
            optimiser.zero_grad()
            loss.backward()
            # step() runs DQNGoalGradient's pre-hook, which clips the combined gradient to max_grad_norm
            optimiser.step()
            logged["train/loss"].append(td_loss.detach())
            if term is not None:
                logged["train/reengage_loss"].append(term.loss.detach())
                logged["train/reengage_masked_fraction"].append(term.masked_fraction.detach())
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self._record_losses(logged)


class FastReenGAGEDQN(FastDQNTrainer, ReenGAGEDQN):
    """:class:`~reengage.agents.ReenGAGEDQN` with the fast ``train()`` (see :mod:`reengage.agents.fast_train`)."""
