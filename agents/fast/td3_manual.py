"""The TD3/DDPG gradient step written by hand for plain ReLU MLPs: no autograd graph (pure functions).

Applies when every network of SB3's TD3 policy is a ReLU MLP on flattened float boxes (SB3's
``MultiInputPolicy`` and ``MlpPolicy``, :func:`manual_td3_plan`). The calculus is
:mod:`reengage.agents.manual_mlp`; the target is :func:`reengage.agents.targets.td3_target_value` and
the term's residuals are :func:`reengage.losses.goal_gradient_residuals`, the functions of every other
path, fed with tensors formed by hand:

* one target forward gives the TD target and, with the term, the target's total goal gradient (through
  the target actor too);
* one critic forward gives the TD loss, the critic's goal gradients and, with one product per layer,
  the parameter gradients of ``L_TD + alpha * L_goal_gradient`` (written into ``.grad``).

The baselines' robotics recipe runs here too:

* the observation normaliser (:class:`~reengage.agents.normalizer.NormalizedCombinedExtractor`, each
  network's own copy): every network reads its extractor's output, and every goal gradient is taken with
  respect to the RAW goal by the normaliser's chain rule
  (:meth:`~reengage.agents.normalizer.RunningNormalizer.raw_gradient`: ``/ std``, 0 where a clip is active), as
  autograd takes it through the extractor on the other paths; the term's gradient in the critic's
  raw-goal gradient goes back to its normalised-input gradient through the same (self-adjoint) map;
* ``value_range``: each target head clipped to ``[c_low / (1 - gamma), 0]`` before the min, passing no
  goal gradient where it clips (the SB3 path's forward hook on the target critic);
* ``action_l2``: the actor loss's ``action_l2 * mean(pi(s)^2)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor

from reengage import losses

from ..goal_gradient import TermInputs
from ..manual_mlp import (
    ReluMLP,
    flat_input,
    flat_input_keys,
    goal_columns,
    mlp_backward,
    relu_mlp_forward,
    value_head_backward,
    value_input_gradient,
    value_pre_activation_gradients,
)
from ..targets import td3_target_value, td_target


class Normalisers(NamedTuple):
    """The observation normalisers in front of each network (every network holds its own copy)."""

    actor: Any
    actor_target: Any
    critic: Any
    critic_target: Any


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
    goal_key: str | None = None  # the observation key of the goal (the raw-goal chain rule reads it)
    normalisers: Normalisers | None = None  # None: the networks read the flattened observation as it is

    def features(self, extractor: Any | None, observations: Any) -> Tensor:
        """A network's input: the flattened observation, or its normaliser's output (``extractor``)."""
        if extractor is None:
            return flat_input(observations, self.keys)
        return extractor(observations)

    def raw_goal_gradient(self, extractor: Any | None, observations: Any, grad: Tensor) -> Tensor:
        """A gradient in the goal columns of a network's input, as a gradient in the raw goal (the chain rule).

        The identity without a normaliser. Linear and self-adjoint, so it also carries a loss's gradient in
        the raw-goal gradient back to the normalised-input gradient.
        """
        if extractor is None:
            return grad
        assert self.goal_key is not None
        raw_goal = observations[self.goal_key].flatten(1).float()
        return extractor.normalizer_for(self.goal_key).raw_gradient(raw_goal, grad)

    def extractor(self, network: str) -> Any | None:
        """The normaliser in front of ``network`` (a field name of :class:`Normalisers`), None without one."""
        return None if self.normalisers is None else getattr(self.normalisers, network)


def manual_td3_plan(policy: Any, observation_space: Any, goal_key: str | None) -> ManualTD3Plan | None:
    """The plan for SB3's TD3 policy when every network is a plain ReLU MLP on flattened float boxes (optionally
    behind the observation normaliser), else None."""
    from stable_baselines3.common.policies import BaseModel
    from stable_baselines3.td3.policies import Actor, ContinuousCritic

    from ..normalizer import NormalizedCombinedExtractor

    actor, actor_target, critic, critic_target = policy.actor, policy.actor_target, policy.critic, policy.critic_target
    if any(type(module) is not Actor for module in (actor, actor_target)) or any(
        type(module) is not ContinuousCritic for module in (critic, critic_target)
    ):
        return None  # subclasses may change the forward
    if any(type(module).extract_features is not BaseModel.extract_features for module in (actor, critic)):
        return None
    extractors = [module.features_extractor for module in (actor, actor_target, critic, critic_target)]
    normalisers = None
    if all(type(extractor) is NormalizedCombinedExtractor for extractor in extractors):
        # it flattens each (Box) entry in the Dict space's order, as CombinedExtractor does, then normalises
        layouts = {tuple(extractor.keys) for extractor in extractors}
        normalisers = Normalisers(*extractors)
    else:
        layouts = {flat_input_keys(extractor, observation_space) for extractor in extractors}
    if len(layouts) != 1 or False in layouts:
        return None
    keys = layouts.pop()
    if not (keys is None or isinstance(keys, tuple)):
        return None
    actor_net, actor_target_net = ReluMLP.of(actor.mu), ReluMLP.of(actor_target.mu)
    if actor_net is None or actor_target_net is None or not (actor_net.tanh_output and actor_target_net.tanh_output):
        return None
    critics = [ReluMLP.of(q_net) for q_net in critic.q_networks]
    critic_targets = [ReluMLP.of(q_net) for q_net in critic_target.q_networks]
    values = [
        net
        for net in (*critics, *critic_targets)
        if net is not None and not net.tanh_output and net.depth >= 2 and net.weights[-1].shape[0] == 1
    ]
    if len(values) != len(critics) + len(critic_targets) or len(critics) != len(critic_targets):
        return None
    features = actor.features_extractor.features_dim
    columns = None
    if goal_key is not None and keys is not None and goal_key in keys:
        columns = goal_columns(keys, observation_space, goal_key)
    action_dim = values[0].weights[0].shape[1] - features
    return ManualTD3Plan(
        actor_net,
        actor_target_net,
        tuple(values[: len(critics)]),
        tuple(values[len(critics) :]),
        keys,
        columns,
        slice(features, features + action_dim),
        goal_key,
        normalisers,
    )


def target_and_goal_gradient(
    plan: ManualTD3Plan,
    batch: Any,
    gamma: float,
    noise: Tensor | None,
    noise_clip: float,
    with_goal_gradient: bool,
    hold_target_action: bool,
    value_range: tuple[float, float] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """TD3's TD target ``y = r + gamma (1 - d) min_j Q'_j(s', clip(pi'(s') + noise))`` and, if asked, ``d y' / d g``.

    The goal gradient is that of the target value at s' (before reward and discount) in the raw goal: the
    total derivative through ``pi'(s', g)`` too, or the partial one with ``hold_target_action`` (an
    ablation). ``value_range``: each head ``Q'_j`` is clipped to it before the min (no gradient where it
    clips). Runs under ``no_grad``; ``noise`` as :func:`~reengage.agents.targets.td3_target_value` takes it.
    """
    with torch.no_grad():
        next_obs = batch.next_observations
        critic_extractor, actor_extractor = plan.extractor("critic_target"), plan.extractor("actor_target")
        next_x = plan.features(critic_extractor, next_obs)
        # without a normaliser both networks read the same flattened observation
        next_actor_x = next_x if plan.normalisers is None else plan.features(actor_extractor, next_obs)
        next_pi, actor_hidden = relu_mlp_forward(plan.actor_target, next_actor_x)
        forwards: list[tuple[Tensor, list[Tensor]]] = []
        in_range: list[Tensor] = []

        def target_heads(action: Tensor) -> list[Tensor]:
            z = torch.cat([next_x, action], dim=1)
            forwards.extend(relu_mlp_forward(net, z) for net in plan.critic_targets)
            heads = [q for q, _ in forwards]
            if value_range is None:
                return heads
            low, high = value_range
            in_range.extend((q >= low) & (q <= high) for q in heads)  # where torch.clamp passes gradients
            return [q.clamp(low, high) for q in heads]

        target = td3_target_value(next_pi, noise, noise_clip, target_heads)
        target_q = td_target(batch, gamma, target.value)
        if not with_goal_gradient:
            return target_q, None
        assert plan.goal_columns is not None
        input_grad = None
        for j, (net, (_, hidden)) in enumerate(zip(plan.critic_targets, forwards)):
            head_grad = value_input_gradient(net, value_pre_activation_gradients(net, hidden), slice(None))
            if in_range:
                head_grad = head_grad * in_range[j]
            if len(forwards) > 1:  # the min passes the gradient to the chosen head only
                head_grad = head_grad * (target.head == j)
            input_grad = head_grad if input_grad is None else input_grad + head_grad
        assert input_grad is not None
        goal_grad = plan.raw_goal_gradient(critic_extractor, next_obs, input_grad[:, plan.goal_columns])
        if not hold_target_action:  # the total derivative, through pi'(s', g) too
            action_grad = input_grad[:, plan.action_columns]
            if noise is not None:  # the clip to [-1, 1] passes gradients where the noisy action lies within
                action_grad = action_grad * ((target.action >= -1.0) & (target.action <= 1.0))
            through_actor = mlp_backward(
                plan.actor_target, actor_hidden, next_pi, action_grad, parameters=False, input_columns=plan.goal_columns
            )
            assert through_actor is not None
            goal_grad = goal_grad + plan.raw_goal_gradient(actor_extractor, next_obs, through_actor)
    return target_q, goal_grad


class CriticStep(NamedTuple):
    """What one hand-written critic step computed (the parameter gradients are in ``.grad``)."""

    features: Tensor  # the critic's input (the batch's flattened, possibly normalised, observations)
    td_loss: Tensor
    term_loss: Tensor | None
    matched: Tensor | None  # (B, 1) share of heads whose row the term matches; None when all are
    q_values: list[Tensor]
    q_goal_grads: list[Tensor]  # in the raw goal


def critic_gradients(
    plan: ManualTD3Plan,
    batch: Any,
    target_q: Tensor,
    target_goal_grad: Tensor | None,
    term_inputs: TermInputs | None,
    alpha: float,
) -> CriticStep:
    """The gradients of ``sum_j MSE(Q_j, y) + alpha * L_goal_gradient`` in every critic parameter's ``.grad``.

    ``term_inputs`` None: the TD loss alone. The term's residuals come from
    :meth:`~reengage.agents.goal_gradient.TermInputs.residuals` on the raw-goal gradients; its derivative in
    ``grad_g Q_j`` is ``2 alpha w r_j / (B * goal_dim)``, which (carried back through the normaliser's chain
    rule, if any) :func:`~reengage.agents.manual_mlp.value_head_backward` folds into the TD backward's products.
    """
    with torch.no_grad():
        observations = batch.observations
        extractor = plan.extractor("critic")
        x = plan.features(extractor, observations)
        z = torch.cat([x, batch.actions], dim=1)
        heads = [relu_mlp_forward(net, z) for net in plan.critics]
        batch_size = z.shape[0]
        errors = [q - target_q for q, _ in heads]
        td_loss = sum((error * error).mean() for error in errors)
        assert isinstance(td_loss, Tensor)
        jacobians = [value_pre_activation_gradients(net, hidden) for net, (_, hidden) in zip(plan.critics, heads)]
        term_errors: list[Tensor | None] = [None] * len(heads)
        term_loss = matched = None
        q_goal_grads: list[Tensor] = []
        if term_inputs is not None:
            assert target_goal_grad is not None and plan.goal_columns is not None
            q_goal_grads = [
                plan.raw_goal_gradient(extractor, observations, value_input_gradient(net, us, plan.goal_columns))
                for net, us in zip(plan.critics, jacobians)
            ]
            term = term_inputs.residuals(q_goal_grads, target_goal_grad)
            term_loss, matched = losses.goal_gradient_loss(term), term.matched
            if alpha > 0:
                weights = term.dim_weights
                scale = 2.0 * alpha / term.residuals[0].numel()
                term_errors = [
                    plan.raw_goal_gradient(
                        extractor, observations, scale * r if weights is None else (scale * weights) * r
                    )
                    for r in term.residuals
                ]
        for net, (_, hidden), us, error, term_error in zip(plan.critics, heads, jacobians, errors, term_errors):
            value_head_backward(net, hidden, us, error * (2.0 / batch_size), term_error, plan.goal_columns)
    return CriticStep(x, td_loss, term_loss, matched, [q for q, _ in heads], q_goal_grads)


def actor_gradients(
    plan: ManualTD3Plan, features: Tensor, actor_features: Tensor | None = None, action_l2: float = 0.0
) -> Tensor:
    """The gradient of ``-mean Q_1(s, pi(s)) + action_l2 * mean(pi(s)^2)`` in the actor's parameters' ``.grad``
    (the critic untouched); returns ``-mean Q_1(s, pi(s))``, the loss SB3 logs.

    ``features``: the critic's input; ``actor_features``: the actor's (None: the same, as without a normaliser).
    """
    with torch.no_grad():
        actions, actor_hidden = relu_mlp_forward(plan.actor, features if actor_features is None else actor_features)
        critic = plan.critics[0]
        q_values, hidden = relu_mlp_forward(critic, torch.cat([features, actions], dim=1))
        jacobian = value_pre_activation_gradients(critic, hidden)
        action_grad = value_input_gradient(critic, jacobian, plan.action_columns) * (-1.0 / features.shape[0])
        if action_l2 > 0:
            action_grad = action_grad + (2.0 * action_l2 / actions.numel()) * actions
        mlp_backward(plan.actor, actor_hidden, actions, action_grad)
    return -q_values.mean()
