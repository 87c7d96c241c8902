"""DeepSets actor and critic over gated goal sets (Eq. 8.15, 8.16, G.14 and App. G.6.2 of the method).

The critic is ``Q(s, a, G, b) = head([ sum_i b_i^2 phi(g_i ++ s) / n_max , s, a ])`` and the actor
``pi(s, G, b) = tanh(head'([ pooled, s ]))`` with the same kind of pooled embedding. Sizes follow the
authors' set-up: ``phi`` is an MLP [400, 400] -> 20 (ReLU), the heads one hidden layer of 400 units.

* The gate enters squared (Eq. G.14), so a padding slot (``b_i = 0``) contributes nothing to Q and
  ``dQ/db_i = 2 b_i phi_i . grad head = 0`` there. Both facts make it exact to skip padding slots
  altogether, which :class:`DeepSetsEncoder` does by default (``skip_padding=True``): only the
  (row, slot) pairs with a non-zero gate go through ``phi``. Padding is about half of the slots in
  DriveSeek, so this halves the dominant cost; the dense path is kept for checking.
* Shared encoder (Sec. 8.5, App. G.6.2): by default the critic owns the encoder and the actor *uses* it
  without owning it. The actor's optimiser and its Polyak update therefore never touch the encoder, so
  it is trained by the critic loss only, and the actor's gradients still flow through it (the target
  gradient of Multi-ReenGAGE is the total derivative through ``pi'``). With ``share_encoder=False`` the
  actor has its own encoder, trained by the actor loss (the ablation).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.td3.policies import TD3Policy
from torch import Tensor, nn

STATE_KEY = "observation"
GOALS_KEY = "goals"
GATES_KEY = "gates"


class DeepSetsEncoder(nn.Module):
    """``sum_i b_i^2 phi(g_i ++ s) / n_max``: a permutation-invariant embedding of a gated goal set.

    Args:
        state_dim: size of the state vector ``s``.
        goal_dim: size of one goal ``g_i``.
        n_max: the constant the sum is divided by (the padded set size of the environment); a fixed
            constant, so adding padding slots never changes the embedding.
        net_arch: hidden sizes of ``phi``.
        embed_dim: output size of ``phi``.
        skip_padding: evaluate ``phi`` only where ``b_i != 0`` (exact, see the module docstring).
    """

    def __init__(
        self,
        state_dim: int,
        goal_dim: int,
        n_max: int,
        net_arch: list[int] | tuple[int, ...] = (400, 400),
        embed_dim: int = 20,
        activation_fn: type[nn.Module] = nn.ReLU,
        skip_padding: bool = True,
    ) -> None:
        super().__init__()
        if n_max < 1:
            raise ValueError(f"n_max must be >= 1, got {n_max!r}")
        self.state_dim = int(state_dim)
        self.goal_dim = int(goal_dim)
        self.n_max = int(n_max)
        self.embed_dim = int(embed_dim)
        self.skip_padding = bool(skip_padding)
        self.phi = nn.Sequential(*create_mlp(goal_dim + state_dim, embed_dim, list(net_arch), activation_fn))

    def forward(self, state: Tensor, goals: Tensor, gates: Tensor) -> Tensor:
        """``state (B, s)``, ``goals (B, n, g)``, ``gates (B, n)`` -> ``(B, embed_dim)``."""
        batch, n_slots = gates.shape
        if self.skip_padding:
            rows, slots = torch.nonzero(gates, as_tuple=True)
            pairs = torch.cat([goals[rows, slots], state[rows]], dim=-1)
            weighted = self.phi(pairs) * (gates[rows, slots] ** 2).unsqueeze(-1)
            pooled = torch.zeros(batch, self.embed_dim, dtype=weighted.dtype, device=weighted.device)
            pooled = pooled.index_add(0, rows, weighted)
        else:
            pairs = torch.cat([goals, state.unsqueeze(1).expand(batch, n_slots, state.shape[-1])], dim=-1)
            pooled = (self.phi(pairs) * (gates**2).unsqueeze(-1)).sum(dim=1)
        return pooled / self.n_max

    # ------------------------------------------------------------------ pieces of the fused update
    # (agents/fast/multi_goal_update.py). Same function as forward(), in steps that expose phi's outputs,
    # so that a gate gradient needs no backward through phi.
    def embed_pairs(
        self, state: Tensor, pairs: ActivePairs, split_first_layer: bool = True, chunk_size: int | None = 2048
    ) -> Tensor:
        """``phi(g_i ++ s)`` of every active pair, ``(P, embed_dim)``.

        * ``split_first_layer``: the first layer is evaluated as ``W_g g_i + (W_s s + b)``, the state
          part once per batch row instead of once per pair (the same sum up to float rounding).
        * ``chunk_size``: pairs go through ``phi`` in blocks of this many rows (None: all at once). The
          arithmetic is the same; a block's activations (2048 x 400 floats, 3.3 MB) stay in the core's
          cache between a layer's product and its ReLU, and blocks this size are reused by the memory
          allocator instead of being mapped fresh (and page-faulted) on every call.
        """
        first = self.phi[0]
        split = split_first_layer and isinstance(first, nn.Linear)
        if split:
            w_goal, w_state = first.weight[:, : self.goal_dim], first.weight[:, self.goal_dim :]
            per_row = torch.addmm(first.bias, state, w_state.t()) if first.bias is not None else state @ w_state.t()
            inputs = pairs.goals
        else:
            inputs = torch.cat([pairs.goals, state.index_select(0, pairs.rows)], dim=-1)
        layers = list(self.phi)[1:]
        step = inputs.shape[0] if chunk_size is None else max(int(chunk_size), 1)
        blocks = []
        for start in range(0, inputs.shape[0], step):
            block = inputs[start : start + step]
            if split:
                hidden = per_row.index_select(0, pairs.rows[start : start + step])
                # in place (no second block-sized buffer); autocast does not cast in-place ops, so match dtypes
                hidden = hidden.addmm_(block.to(hidden.dtype), w_goal.t().to(hidden.dtype))
            else:
                hidden = first(block)
            for layer in layers:
                # a Linear does not keep its output for backward, so its ReLU may work in place
                hidden = torch.relu_(hidden) if isinstance(layer, nn.ReLU) else layer(hidden)
            blocks.append(hidden)
        if not blocks:
            return inputs.new_zeros(0, self.embed_dim)
        return blocks[0] if len(blocks) == 1 else torch.cat(blocks)

    def pool_pairs(self, embeddings: Tensor, pairs: ActivePairs) -> Tensor:
        """``sum_i b_i^2 phi_i / n_max`` per batch row, ``(B, embed_dim)`` (Eq. G.14)."""
        weighted = embeddings * (pairs.gates**2 / self.n_max).unsqueeze(-1)
        pooled = torch.zeros(pairs.batch, embeddings.shape[-1], dtype=embeddings.dtype, device=embeddings.device)
        return pooled.index_add(0, pairs.rows, weighted)

    def gate_gradient(self, embeddings: Tensor, pairs: ActivePairs, pooled_gradient: Tensor) -> Tensor:
        """``d f / d b`` of any ``f(pooled)`` from ``d f / d pooled``: ``2 b_i (phi_i . df/dpooled) / n_max``.

        ``(B, n_slots)``, exactly zero on padding slots. Differentiable in ``embeddings`` and
        ``pooled_gradient`` (so the matching loss of Eq. 8.19 reaches phi's parameters).
        """
        per_pair = (embeddings * pooled_gradient.index_select(0, pairs.rows)).sum(dim=-1)
        per_pair = per_pair * (2.0 / self.n_max) * pairs.gates
        gradient = torch.zeros(pairs.batch, pairs.n_slots, dtype=per_pair.dtype, device=per_pair.device)
        return gradient.index_put((pairs.rows, pairs.slots), per_pair)


class ActivePairs(NamedTuple):
    """The (row, slot) pairs of a batch of goal sets whose gate is non-zero, gathered once.

    Only these pairs reach ``phi`` (a zero gate contributes nothing to the pooled sum and has a zero
    gate gradient, Eq. G.14-G.15). An observation and its next observation share the goal set, so one
    ``ActivePairs`` serves both the critic's and the target's encodings of a replay batch.
    """

    rows: Tensor  # (P,) batch row of each pair
    slots: Tensor  # (P,) goal slot of each pair
    gates: Tensor  # (P,) b_i
    goals: Tensor  # (P, goal_dim) g_i
    batch: int
    n_slots: int


def active_pairs(goals: Tensor, gates: Tensor) -> ActivePairs:
    """``goals (B, n, g)`` and ``gates (B, n)`` -> the pairs with ``b_i != 0`` (row-major order)."""
    rows, slots = torch.nonzero(gates, as_tuple=True)
    return ActivePairs(rows, slots, gates[rows, slots], goals[rows, slots], int(gates.shape[0]), int(gates.shape[1]))


def _as_float(x: Tensor) -> Tensor:
    # keep float64 for gradient checks; integer-stored observations become float32
    return x if x.is_floating_point() else x.float()


def _split(obs: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    return _as_float(obs[STATE_KEY]), _as_float(obs[GOALS_KEY]), _as_float(obs[GATES_KEY])


class DeepSetsActor(BasePolicy):
    """Deterministic actor ``tanh(head([pooled, s]))`` (actions in [-1, 1], rescaled by SB3)."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        encoder: DeepSetsEncoder,
        own_encoder: bool,
        net_arch: list[int],
        activation_fn: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__(observation_space, action_space, squash_output=True)
        if own_encoder:
            self.encoder = encoder
        else:
            # held outside the module tree: not in parameters(), state_dict() or the optimiser
            self._borrowed = (encoder,)
        self.own_encoder = own_encoder
        state_dim = observation_space.spaces[STATE_KEY].shape[0]
        action_dim = int(action_space.shape[0])
        self.mu = nn.Sequential(
            *create_mlp(encoder.embed_dim + state_dim, action_dim, net_arch, activation_fn, squash_output=True)
        )

    @property
    def set_encoder(self) -> DeepSetsEncoder:
        return self.encoder if self.own_encoder else self._borrowed[0]

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        state, goals, gates = _split(obs)
        return self.mu(torch.cat([self.set_encoder(state, goals, gates), state], dim=-1))

    def _predict(self, observation: dict[str, Tensor], deterministic: bool = False) -> Tensor:
        return self(observation)


class DeepSetsCritic(BaseModel):
    """``n_critics`` heads ``head_j([pooled, s, a])`` over one encoder owned by this module."""

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        encoder: DeepSetsEncoder,
        net_arch: list[int],
        activation_fn: type[nn.Module] = nn.ReLU,
        n_critics: int = 1,
    ) -> None:
        super().__init__(observation_space, action_space)
        self.encoder = encoder
        self.n_critics = int(n_critics)
        state_dim = observation_space.spaces[STATE_KEY].shape[0]
        in_dim = encoder.embed_dim + state_dim + int(action_space.shape[0])
        self.q_networks = nn.ModuleList(
            [nn.Sequential(*create_mlp(in_dim, 1, net_arch, activation_fn)) for _ in range(self.n_critics)]
        )

    def forward(self, obs: dict[str, Tensor], actions: Tensor) -> tuple[Tensor, ...]:
        state, goals, gates = _split(obs)
        features = torch.cat([self.encoder(state, goals, gates), state, actions], dim=-1)
        return tuple(q_net(features) for q_net in self.q_networks)

    def q1_forward(self, obs: dict[str, Tensor], actions: Tensor) -> Tensor:
        state, goals, gates = _split(obs)
        return self.q_networks[0](torch.cat([self.encoder(state, goals, gates), state, actions], dim=-1))


class DeepSetsTD3Policy(TD3Policy):
    """TD3/DDPG policy over gated goal sets (works with SB3's DDPG and TD3 unchanged).

    Args (policy_kwargs):
        net_arch: hidden sizes of the actor and critic heads (default [400]).
        encoder_arch: hidden sizes of ``phi`` (default [400, 400]); embed_dim: its output size (20).
        n_max: divisor of the pooled sum (default: the number of goal slots of the observation space).
        share_encoder: actor uses the critic's encoder (True, the paper's choice) or its own (False).
        skip_padding: see :class:`DeepSetsEncoder`.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Box,
        lr_schedule: Any,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        encoder_arch: list[int] | None = None,
        embed_dim: int = 20,
        n_max: int | None = None,
        share_encoder: bool = True,
        skip_padding: bool = True,
        n_critics: int = 1,
        optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        **unused: Any,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict) or not {STATE_KEY, GOALS_KEY, GATES_KEY} <= set(
            observation_space.spaces
        ):
            raise ValueError(
                f"DeepSetsTD3Policy needs a Dict observation with keys {[STATE_KEY, GOALS_KEY, GATES_KEY]}, "
                f"got {observation_space}"
            )
        if unused.get("share_features_extractor"):
            raise ValueError("share_features_extractor is not used here; share the set encoder with share_encoder=True")
        # SB3 and the project's builder pass these generic policy arguments; they do not apply here
        ignored = {
            "share_features_extractor",
            "features_extractor_class",
            "features_extractor_kwargs",
            "normalize_images",
        }
        unknown = set(unused) - ignored
        if unknown:
            raise ValueError(f"unknown DeepSetsTD3Policy arguments {sorted(unknown)}")
        self.encoder_arch = list(encoder_arch) if encoder_arch is not None else [400, 400]
        self.embed_dim = int(embed_dim)
        goal_shape = observation_space.spaces[GOALS_KEY].shape
        self.n_max = int(n_max) if n_max is not None else int(goal_shape[0])
        self.share_encoder = bool(share_encoder)
        self.skip_padding = bool(skip_padding)
        self.head_arch = list(net_arch) if net_arch is not None else [400]
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=self.head_arch,
            activation_fn=activation_fn,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            n_critics=n_critics,
            share_features_extractor=False,
        )

    def _make_encoder(self) -> DeepSetsEncoder:
        state_dim = self.observation_space.spaces[STATE_KEY].shape[0]
        goal_dim = self.observation_space.spaces[GOALS_KEY].shape[1]
        return DeepSetsEncoder(
            state_dim, goal_dim, self.n_max, self.encoder_arch, self.embed_dim, self.activation_fn, self.skip_padding
        ).to(self.device)

    def make_critic(self, features_extractor: Any = None) -> DeepSetsCritic:  # type: ignore[override]
        return DeepSetsCritic(
            self.observation_space,
            self.action_space,
            self._make_encoder(),
            self.head_arch,
            self.activation_fn,
            self.critic_kwargs["n_critics"],
        ).to(self.device)

    def make_actor(  # type: ignore[override]
        self, features_extractor: Any = None, encoder: DeepSetsEncoder | None = None
    ) -> DeepSetsActor:
        own = encoder is None
        return DeepSetsActor(
            self.observation_space,
            self.action_space,
            self._make_encoder() if own else encoder,
            own_encoder=own,
            net_arch=self.head_arch,
            activation_fn=self.activation_fn,
        ).to(self.device)

    def _build(self, lr_schedule: Any) -> None:
        # critics first: a shared encoder belongs to the critic (and its target to the critic target)
        self.critic = self.make_critic()
        self.critic_target = self.make_critic()
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor = self.make_actor(encoder=self.critic.encoder if self.share_encoder else None)
        self.actor_target = self.make_actor(encoder=self.critic_target.encoder if self.share_encoder else None)
        self.actor_target.load_state_dict(self.actor.state_dict())
        self.actor.optimizer = self.optimizer_class(self.actor.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)
        self.critic.optimizer = self.optimizer_class(
            self.critic.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )
        self.actor_target.set_training_mode(False)
        self.critic_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            encoder_arch=self.encoder_arch,
            embed_dim=self.embed_dim,
            n_max=self.n_max,
            share_encoder=self.share_encoder,
            skip_padding=self.skip_padding,
            net_arch=self.head_arch,
        )
        for key in ("features_extractor_class", "features_extractor_kwargs", "share_features_extractor"):
            data.pop(key, None)
        return data
