"""The fused training step of DDPG/TD3 with the Multi-ReenGAGE term on shared DeepSets networks: its pieces.

:class:`~reengage.agents.fast.multi_goal.FusedGateTrainer` runs them. Together they compute the update of
stable-baselines3's ``TD3.train`` plus the term that :class:`~reengage.agents.multi_goal.GateGradientMixin`
adds through the critic optimiser's hook on the reference path (Eq. 8.19,
:func:`reengage.losses.gate_gradient_loss`, which it calls unchanged), with every pass through the set
encoder ``phi`` that is not needed removed. ``phi`` (MLP [400, 400] -> 20 over up to 200 goals per sample)
is nearly all of the arithmetic; the heads see one 20 + |s| + |a| vector per sample and cost little.

Passes of ``phi`` per gradient step, each over the active (sample, goal) pairs of a batch:

=========================================  =================================  ==========================
                                           reference path (SB3 + hook)         this module
=========================================  =================================  ==========================
TD target at s' (target encoder)           2 forwards (actor', critic')       1 forward, no graph
gate-gradient target (target encoder)      2 forwards with a graph            (shared with the above)
critic, TD loss                            forward + backward                 forward + backward, shared
critic, gate gradient (double backward)    forward + backward                 (shared with the above)
actor loss (encoder after the critic step) 2 forwards + 2 backwards           1 forward, no graph
=========================================  =================================  ==========================

Why this is the same loss: the gates enter after the encoder, ``pooled = sum_i b_i^2 phi_i / n_max``,
so for any function ``f`` of the pooled embedding ``df/db_i = 2 b_i (phi_i . df/dpooled) / n_max``
(:meth:`DeepSetsEncoder.gate_gradient`). ``df/dpooled`` needs a backward through the heads only, and the
target's total derivative through ``pi'`` is that of the heads on the one target encoding. The encoder
is shared and trained by the critic loss only, so the actor needs the encoding as a value (no graph),
evaluated with the critic as it is after its step, exactly as in SB3. Padding slots (gate 0) never
reach ``phi``. Random draws are the reference path's (SB3's target noise from torch's global
generator, the term's target noise from the mixin's private one), so checkpoints resume bit-exactly
and both paths consume the same random streams.

Options (constructor arguments of the Multi-ReenGAGE agents):

* ``actor_encoding="after_step"`` (default, SB3's order) or ``"shared"``: the actor reuses the critic's
  encoding of this batch from before the critic step (one encoder pass fewer; a slightly different
  algorithm, since the actor then sees the encoder one step old).
* ``encoder_precision="float32"`` (default) or ``"bfloat16"``: ``phi`` runs under CPU/GPU autocast;
  the heads, pooling and losses stay float32 (slower on the project's CPU, see docs/performance.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from reengage import losses

from ..deep_sets import STATE_KEY, ActivePairs, DeepSetsCritic, DeepSetsEncoder, DeepSetsTD3Policy, active_pairs
from ..targets import td3_target_value, td_target

ACTOR_ENCODINGS = ("after_step", "shared")
PAIR_BLOCK_ROWS = 2048


class GateAgent(Protocol):
    """What the fused step reads of a Multi-ReenGAGE agent: its networks and TD3's settings.

    ``policy`` is a :class:`~reengage.agents.deep_sets.DeepSetsTD3Policy` that passes
    :func:`supports_fused_update` (typed loosely: SB3 declares the attribute as its own policy class).
    """

    policy: Any
    gamma: float
    target_policy_noise: float
    target_noise_clip: float

    def _draw_normal(self, shape: Sequence[int]) -> Tensor: ...


class TargetTerms(NamedTuple):
    """What the target networks contribute to one update."""

    q_values: Tensor  # (B, 1) r + gamma (1 - d) min_j Q'_j(s', pi'(s') + noise)
    gate_gradient: Tensor | None  # (B, n) grad_b of min_j Q'_j(s', pi'(s') + noise', G, b), or None


class CriticTerms(NamedTuple):
    """The critic's losses on one batch (with their graphs) and its encoding of the batch."""

    td_loss: Tensor
    gate_loss: Tensor | None
    pooled: Tensor  # (B, embed) the critic's pooled embedding of s (with a graph)


def supports_fused_update(policy: Any) -> bool:
    """The fused step needs the DeepSets policy with the encoder shared by actor and critic."""
    return isinstance(policy, DeepSetsTD3Policy) and policy.share_encoder and isinstance(policy.critic, DeepSetsCritic)


def _state(obs: dict[str, Tensor]) -> Tensor:
    state = obs[STATE_KEY]
    return state if state.is_floating_point() else state.float()


def batch_pairs(batch: Any) -> tuple[ActivePairs, ActivePairs]:
    """Active pairs of the observations and of the next observations (one object when they agree)."""
    obs, next_obs = batch.observations, batch.next_observations
    pairs = active_pairs(obs["goals"].float(), obs["gates"].float())
    same_set = torch.equal(obs["gates"], next_obs["gates"]) and torch.equal(obs["goals"], next_obs["goals"])
    next_pairs = pairs if same_set else active_pairs(next_obs["goals"].float(), next_obs["gates"].float())
    return pairs, next_pairs


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def pair_block_rows(device: torch.device) -> int | None:
    """Rows per block of ``phi`` (:meth:`DeepSetsEncoder.embed_pairs`): 2048 on one CPU thread, else all at once.

    Measured on the project's shared 2-core CPU (docs/performance.md): blocks make one thread about 20%
    faster (activations stay in cache, no fresh page mappings), but with two threads every block is a
    parallel region whose threads wait for each other, which costs far more than it saves when the
    cores are shared with other processes. GPUs take the whole batch at once.
    """
    if device.type != "cpu" or torch.get_num_threads() > 1:
        return None
    return PAIR_BLOCK_ROWS


def encode(
    encoder: DeepSetsEncoder, state: Tensor, pairs: ActivePairs, autocast_dtype: torch.dtype | None = None
) -> tuple[Tensor, Tensor]:
    """``(phi of every active pair (P, E), pooled embedding (B, E))``, both float32."""
    with _autocast(state.device, autocast_dtype):
        embeddings = encoder.embed_pairs(state, pairs, chunk_size=pair_block_rows(state.device))
    embeddings = embeddings.float()
    return embeddings, encoder.pool_pairs(embeddings, pairs)


def _target_heads(critic: DeepSetsCritic, pooled: Tensor, state: Tensor) -> Callable[[Tensor], list[Tensor]]:
    """The target critic's heads on one encoding of s', as a function of the action."""

    def heads(actions: Tensor) -> list[Tensor]:
        features = torch.cat([pooled, state, actions], dim=-1)
        return [q_net(features) for q_net in critic.q_networks]

    return heads


def target_terms(
    agent: GateAgent,
    batch: Any,
    pairs: ActivePairs,
    with_gate_gradient: bool,
    autocast_dtype: torch.dtype | None = None,
) -> TargetTerms:
    """TD target and Eq. 8.19's target gate gradient from one target encoding of s'.

    Noise as in the reference path: SB3's ``normal_`` on torch's global generator for the TD target,
    the mixin's private generator for the gate-gradient target (TD3; both are zero for DDPG).
    """
    policy = agent.policy
    critic_target, actor_target = policy.critic_target, policy.actor_target
    next_state = _state(batch.next_observations)
    actions = batch.actions
    td_noise = torch.empty_like(actions).normal_(0, agent.target_policy_noise)
    with torch.no_grad():
        next_embeddings, next_pooled = encode(critic_target.encoder, next_state, pairs, autocast_dtype)
    pooled_leaf = next_pooled.requires_grad_(with_gate_gradient)
    with torch.set_grad_enabled(with_gate_gradient):
        policy_actions = actor_target.mu(torch.cat([pooled_leaf, next_state], dim=-1))
    with torch.no_grad():
        next_q = td3_target_value(
            policy_actions, td_noise, agent.target_noise_clip, _target_heads(critic_target, next_pooled, next_state)
        ).value
        q_target = td_target(batch, agent.gamma, next_q)
    if not with_gate_gradient:
        return TargetTerms(q_target, None)
    term_noise = agent._draw_normal(actions.shape) * agent.target_policy_noise
    with torch.enable_grad():
        value = td3_target_value(
            policy_actions, term_noise, agent.target_noise_clip, _target_heads(critic_target, pooled_leaf, next_state)
        ).value
        (pooled_gradient,) = torch.autograd.grad(value.sum(), pooled_leaf)
    return TargetTerms(q_target, critic_target.encoder.gate_gradient(next_embeddings, pairs, pooled_gradient))


def critic_terms(
    agent: GateAgent,
    batch: Any,
    pairs: ActivePairs,
    target: TargetTerms,
    with_gate_loss: bool,
    graph_for_gate_loss: bool = True,
    autocast_dtype: torch.dtype | None = None,
) -> CriticTerms:
    """SB3's TD loss and Eq. 8.19 summed over heads, from one encoding of s by the critic."""
    critic = agent.policy.critic
    state = _state(batch.observations)
    embeddings, pooled = encode(critic.encoder, state, pairs, autocast_dtype)
    features = torch.cat([pooled, state, batch.actions], dim=-1)
    heads = [q_net(features) for q_net in critic.q_networks]
    td_loss = sum(F.mse_loss(q_values, target.q_values) for q_values in heads)
    assert isinstance(td_loss, Tensor)
    if not with_gate_loss:
        return CriticTerms(td_loss, None, pooled)
    if target.gate_gradient is None:
        raise ValueError("the gate-gradient loss needs the target's gate gradient (target_terms(..., True))")
    gate_loss: Tensor | float = 0.0
    for q_values in heads:
        # the heads' graph is kept: the TD loss still goes back through it
        (pooled_gradient,) = torch.autograd.grad(
            q_values.sum(), pooled, create_graph=graph_for_gate_loss, retain_graph=True
        )
        q_gate_gradient = critic.encoder.gate_gradient(embeddings, pairs, pooled_gradient)
        gate_loss = gate_loss + losses.gate_gradient_loss(
            q_gate_gradient, batch.item_rewards, target.gate_gradient, batch.dones, agent.gamma
        )
    assert isinstance(gate_loss, Tensor)
    return CriticTerms(td_loss, gate_loss, pooled)


def actor_loss(
    agent: GateAgent,
    batch: Any,
    pairs: ActivePairs,
    pooled: Tensor | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """``-Q_1(s, pi(s))``: the encoder's value only (no graph: the actor optimiser does not own it).

    ``pooled`` given: that encoding is used (``actor_encoding="shared"``); otherwise the encoder is
    evaluated now, as it stands after the critic step (SB3's order).
    """
    policy = agent.policy
    state = _state(batch.observations)
    if pooled is None:
        with torch.no_grad():
            _, pooled = encode(policy.critic.encoder, state, pairs, autocast_dtype)
    pooled = pooled.detach()
    actions = policy.actor.mu(torch.cat([pooled, state], dim=-1))
    return -policy.critic.q_networks[0](torch.cat([pooled, state, actions], dim=-1)).mean()
