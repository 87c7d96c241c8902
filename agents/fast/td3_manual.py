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
    if any(type(module) is not Actor for module in (actor, actor_target)) or any(
        type(module) is not ContinuousCritic for module in (critic, critic_target)
    ):
        return None  # subclasses may change the forward
    if any(type(module).extract_features is not BaseModel.extract_features for module in (actor, critic)):
        return None
    layouts = {flat_input_keys(module.features_extractor, observation_space)
               for module in (actor, actor_target, critic, critic_target)}
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
    values = [net for net in (*critics, *critic_targets)
              if net is not None and not net.tanh_output and net.depth >= 2 and net.weights[-1].shape[0] == 1]
    if len(values) != len(critics) + len(critic_targets) or len(critics) != len(critic_targets):
        return None
    features = actor.features_extractor.features_dim
    columns = None
    if goal_key is not None and keys is not None and goal_key in keys:
        columns = goal_columns(keys, observation_space, goal_key)
    action_dim = values[0].weights[0].shape[1] - features
    return ManualTD3Plan(actor_net, actor_target_net, tuple(values[: len(critics)]), tuple(values[len(critics):]),
                         keys, columns, slice(features, features + action_dim))


def target_and_goal_gradient(
    plan: ManualTD3Plan,
    batch: Any,
    gamma: float,
    noise: Tensor | None,
    noise_clip: float,
    with_goal_gradient: bool,
    hold_target_action: bool,
) -> tuple[Tensor, Tensor | None]:
    """TD3's TD target ``y = r + gamma (1 - d) min_j Q'_j(s', clip(pi'(s') + noise))`` and, if asked, ``d y' / d g``.

    The goal gradient is that of the target value at s' (before reward and discount): the total
    derivative through ``pi'(s', g)`` too, or the partial one with ``hold_target_action`` (an ablation).
    Runs under ``no_grad``; ``noise`` as :func:`~reengage.agents.targets.td3_target_value` takes it.
    """
    with torch.no_grad():
        next_x = flat_input(batch.next_observations, plan.keys)
        next_pi, actor_hidden = relu_mlp_forward(plan.actor_target, next_x)
        forwards: list[tuple[Tensor, list[Tensor]]] = []

        def target_heads(action: Tensor) -> list[Tensor]:
            z = torch.cat([next_x, action], dim=1)
            forwards.extend(relu_mlp_forward(net, z) for net in plan.critic_targets)
            return [q for q, _ in forwards]

        target = td3_target_value(next_pi, noise, noise_clip, target_heads)
        target_q = td_target(batch, gamma, target.value)
        if not with_goal_gradient:
            return target_q, None
        assert plan.goal_columns is not None
        input_grad = None
        for j, (net, (_, hidden)) in enumerate(zip(plan.critic_targets, forwards)):
            head_grad = value_input_gradient(net, value_pre_activation_gradients(net, hidden), slice(None))
            if len(forwards) > 1:  # the min passes the gradient to the chosen head only
                head_grad = head_grad * (target.head == j)
            input_grad = head_grad if input_grad is None else input_grad + head_grad
        assert input_grad is not None
        goal_grad = input_grad[:, plan.goal_columns]
        if not hold_target_action:  # the total derivative, through pi'(s', g) too
            action_grad = input_grad[:, plan.action_columns]
            if noise is not None:  # the clip to [-1, 1] passes gradients where the noisy action lies within
                action_grad = action_grad * ((target.action >= -1.0) & (target.action <= 1.0))
            through_actor = mlp_backward(plan.actor_target, actor_hidden, next_pi, action_grad,
                                         parameters=False, input_columns=plan.goal_columns)
            assert through_actor is not None
            goal_grad = goal_grad + through_actor
    return target_q, goal_grad


class CriticStep(NamedTuple):
    """What one hand-written critic step computed (the parameter gradients are in ``.grad``)."""

    features: Tensor  # the batch's flattened observations (the actor's input as well)
    td_loss: Tensor
    term_loss: Tensor | None
    matched: Tensor | None  # (B, 1) share of heads whose row the term matches; None when all are
    q_values: list[Tensor]
    q_goal_grads: list[Tensor]


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
    :meth:`~reengage.agents.goal_gradient.TermInputs.residuals`; its derivative in ``grad_g Q_j`` is
    ``2 alpha w r_j / (B * goal_dim)``, which :func:`~reengage.agents.manual_mlp.value_head_backward`
    folds into the TD backward's products.
    """
    with torch.no_grad():
        x = flat_input(batch.observations, plan.keys)
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
            q_goal_grads = [value_input_gradient(net, us, plan.goal_columns)
                            for net, us in zip(plan.critics, jacobians)]
            term = term_inputs.residuals(q_goal_grads, target_goal_grad)
            term_loss, matched = losses.goal_gradient_loss(term), term.matched
            if alpha > 0:
                weights = term.dim_weights
                scale = 2.0 * alpha / term.residuals[0].numel()
                term_errors = [scale * r if weights is None else (scale * weights) * r for r in term.residuals]
        for net, (_, hidden), us, error, term_error in zip(plan.critics, heads, jacobians, errors, term_errors):
            value_head_backward(net, hidden, us, error * (2.0 / batch_size), term_error, plan.goal_columns)
    return CriticStep(x, td_loss, term_loss, matched, [q for q, _ in heads], q_goal_grads)


def actor_gradients(plan: ManualTD3Plan, features: Tensor) -> Tensor:
    """The gradient of ``-mean Q_1(s, pi(s))`` in the actor's parameters' ``.grad`` (the critic untouched); the loss."""
    with torch.no_grad():
        actions, actor_hidden = relu_mlp_forward(plan.actor, features)
        critic = plan.critics[0]
        q_values, hidden = relu_mlp_forward(critic, torch.cat([features, actions], dim=1))
        jacobian = value_pre_activation_gradients(critic, hidden)
        action_grad = value_input_gradient(critic, jacobian, plan.action_columns)
        mlp_backward(plan.actor, actor_hidden, actions, action_grad * (-1.0 / features.shape[0]))
    return -q_values.mean()
