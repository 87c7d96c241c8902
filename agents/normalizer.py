"""Observation and goal normalisation inside the policy, so the goal gradient stays a raw-goal gradient.

The baselines' DDPG + HER normalises observations and goals with running statistics: raw values are
clipped to ``[-clip_obs, clip_obs]`` (200), normalised as ``(x - mean) / std`` and clipped again to
``[-clip_normalized, clip_normalized]`` (5). Here that normaliser is a module *inside* the networks'
input path (a features extractor holding the statistics as buffers), not an environment wrapper:

* the replay buffer, HER's relabelling, the reward and the sparse mask all see RAW goals;
* the ReenGAGE term differentiates the critic with respect to the raw goal, and autograd applies the
  chain rule through the normaliser for free: ``dQ/dg_raw = (1 / std) * dQ/dg_norm``, zero where a
  clip is active; so ``reengage_alpha`` means the same with and without normalisation;
* the statistics are buffers of the policy: they are saved in ``model.zip`` and in checkpoints, and
  restored on load, with nothing else to remember.

Statistics change only through :meth:`NormalizedCombinedExtractor.update`, which
:class:`ObservationNormalizerMixin` calls on every collected transition; evaluation and training
steps never change them (frozen outside data collection).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import Tensor, nn

GOAL_KEYS = ("achieved_goal", "desired_goal")
GOAL_GROUP = "goal"


class RunningNormalizer(nn.Module):
    """Running mean and variance of a vector, applied as clip -> standardise -> clip.

    Buffers are float64 (long runs add millions of samples); the forward pass is float32.
    ``std = max(sqrt(var), std_floor)``: the baselines' floor (0.01) keeps constant dimensions
    (common in the hand environments) from being blown up.

    Buffer names avoid ``running_``: stable-baselines3 copies buffers with that prefix into the
    target networks as batch-norm statistics.
    """

    def __init__(
        self, size: int, clip_obs: float = 200.0, clip_normalized: float = 5.0, std_floor: float = 1e-2
    ) -> None:
        super().__init__()
        if clip_obs <= 0 or clip_normalized <= 0 or std_floor <= 0:
            raise ValueError(
                f"clip_obs, clip_normalized and std_floor must be positive, got {clip_obs}, {clip_normalized}, {std_floor}"
            )
        self.size = int(size)
        self.clip_obs = float(clip_obs)
        self.clip_normalized = float(clip_normalized)
        self.std_floor = float(std_floor)
        self.register_buffer("stat_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("stat_mean", torch.zeros(self.size, dtype=torch.float64))
        self.register_buffer("stat_var", torch.ones(self.size, dtype=torch.float64))

    @property
    def mean(self) -> Tensor:
        return self.stat_mean.float()

    @property
    def std(self) -> Tensor:
        """The divisor of the normalisation, per dimension (float32)."""
        return self.stat_var.sqrt().clamp_min(self.std_floor).float()

    @torch.no_grad()
    def update(self, values: Tensor | np.ndarray) -> None:
        """Merge a batch ``(N, size)`` of raw values into the statistics (Chan et al.'s parallel update)."""
        batch = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values)
        batch = batch.reshape(-1, self.size).to(device=self.stat_mean.device, dtype=torch.float64)
        # the statistics describe what the network is fed: raw values after the first clip
        batch = batch.clamp(-self.clip_obs, self.clip_obs)
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(dim=0)
        batch_var = batch.var(dim=0, unbiased=False)
        total = self.stat_count + n
        delta = batch_mean - self.stat_mean
        m2 = self.stat_var * self.stat_count + batch_var * n + delta.square() * self.stat_count * n / total
        self.stat_mean.add_(delta * n / total)
        self.stat_var.copy_(m2 / total)
        self.stat_count.copy_(total)

    def forward(self, values: Tensor) -> Tensor:
        # torch.clamp passes no gradient where it clips: the chain rule's "zero where clipped"
        clipped = values.clamp(-self.clip_obs, self.clip_obs)
        normalised = (clipped - self.mean) / self.std
        return normalised.clamp(-self.clip_normalized, self.clip_normalized)

    def raw_gradient(self, values: Tensor, output_grad: Tensor) -> Tensor:
        """The gradient in the raw ``values`` of a function whose gradient in the output of :meth:`forward` is
        ``output_grad``.

        The chain rule autograd applies through :meth:`forward`, written out for the hand-written updates
        (:mod:`reengage.agents.fast.td3_manual`): ``output_grad / std`` where neither clip is active and 0
        where one is. ``torch.clamp`` passes the gradient at its bounds (``low <= x <= high``), and so does
        this, so the two agree bit for bit. Being linear in ``output_grad``, it is also its own adjoint: the
        same call carries a loss's gradient in the raw-goal gradient back to the normalised one.
        """
        std = self.std
        clipped = values.clamp(-self.clip_obs, self.clip_obs)
        normalised = (clipped - self.mean) / std
        passes = (values.abs() <= self.clip_obs) & (normalised.abs() <= self.clip_normalized)
        zero = torch.zeros((), dtype=output_grad.dtype, device=output_grad.device)
        return torch.where(passes, output_grad / std, zero)

    def extra_repr(self) -> str:
        return f"size={self.size}, clip_obs={self.clip_obs}, clip_normalized={self.clip_normalized}"


class NormalizedCombinedExtractor(BaseFeaturesExtractor):
    """stable-baselines3's ``CombinedExtractor`` for Box entries, with each entry normalised first.

    ``achieved_goal`` and ``desired_goal`` share one set of statistics (as in the baselines' goal
    normaliser, and because HER turns achieved goals into desired ones); every other key has its own.

    Args:
        observation_space: a Dict of Box spaces (the goal-conditioned observation).
        clip_obs: clip of raw values (baselines: 200).
        clip_normalized: clip of normalised values (baselines: 5).
        std_floor: smallest standard deviation divided by (baselines: 0.01).
        goal_keys: keys that share the goal statistics.
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        clip_obs: float = 200.0,
        clip_normalized: float = 5.0,
        std_floor: float = 1e-2,
        goal_keys: tuple[str, ...] = GOAL_KEYS,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(
                f"observation normalisation needs a Dict observation space (goal-conditioned), got {observation_space}"
            )
        sizes: dict[str, int] = {}
        for key, space in observation_space.spaces.items():
            if not isinstance(space, spaces.Box):
                raise ValueError(f"observation normalisation supports Box entries only; {key!r} is {space}")
            sizes[key] = int(np.prod(space.shape))
        super().__init__(observation_space, features_dim=sum(sizes.values()))
        self.keys = list(sizes)
        self.group_of = {key: (GOAL_GROUP if key in goal_keys else key) for key in self.keys}
        group_sizes: dict[str, int] = {}
        for key, group in self.group_of.items():
            if group_sizes.setdefault(group, sizes[key]) != sizes[key]:
                raise ValueError(f"goal keys {goal_keys} must have the same size to share statistics")
        self.normalizers = nn.ModuleDict(
            {
                group: RunningNormalizer(size, clip_obs, clip_normalized, std_floor)
                for group, size in group_sizes.items()
            }
        )

    def normalizer_for(self, key: str) -> RunningNormalizer:
        return self.normalizers[self.group_of[key]]  # type: ignore[return-value]

    def forward(self, observations: dict[str, Tensor]) -> Tensor:
        return torch.cat(
            [self.normalizer_for(key)(observations[key].flatten(start_dim=1).float()) for key in self.keys], dim=1
        )

    @torch.no_grad()
    def update(self, observations: dict[str, np.ndarray]) -> None:
        """Merge a batch of raw observations (one row per environment) into every group's statistics."""
        batches: dict[str, list[np.ndarray]] = {}
        for key in self.keys:
            batches.setdefault(self.group_of[key], []).append(
                np.asarray(observations[key], dtype=np.float64).reshape(-1, self.normalizer_for(key).size)
            )
        for group, parts in batches.items():
            self.normalizers[group].update(np.concatenate(parts, axis=0))  # type: ignore[operator]


def normalizing_extractors(policy: nn.Module) -> list[NormalizedCombinedExtractor]:
    """Every normalising features extractor of a policy (actor, critic and their targets)."""
    return [module for module in policy.modules() if isinstance(module, NormalizedCombinedExtractor)]


def goal_std(policy: nn.Module, goal_key: str = "desired_goal") -> Tensor | None:
    """The normaliser's per-dimension std of the goal, or None if the policy does not normalise."""
    extractors = normalizing_extractors(policy)
    if not extractors:
        return None
    return extractors[0].normalizer_for(goal_key).std


def normalizer_policy_kwargs(
    clip_obs: float = 200.0, clip_normalized: float = 5.0, std_floor: float = 1e-2
) -> dict[str, Any]:
    """``policy_kwargs`` entries that put the normaliser in front of every network of the policy."""
    return {
        "features_extractor_class": NormalizedCombinedExtractor,
        "features_extractor_kwargs": {"clip_obs": clip_obs, "clip_normalized": clip_normalized, "std_floor": std_floor},
    }


class ObservationNormalizerMixin:
    """Updates the policy's normalisers from every collected transition (and from nothing else).

    Put it before the SB3 class (``class A(ObservationNormalizerMixin, ReenGAGEDDPG)``) and pass
    :func:`normalizer_policy_kwargs` in ``policy_kwargs``. The statistics are frozen at evaluation
    and during gradient steps, since only data collection calls ``_store_transition``.
    """

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        if not normalizing_extractors(self.policy):  # type: ignore[attr-defined]
            raise ValueError(
                f"{type(self).__name__} updates observation normalisers, but the policy has none: pass "
                "policy_kwargs=normalizer_policy_kwargs() (reengage.agents.normalizer)"
            )
        if getattr(self, "_vec_normalize_env", None) is not None:
            raise ValueError("observation normalisation inside the policy and VecNormalize are exclusive: use one")

    def _store_transition(
        self,
        replay_buffer: Any,
        buffer_action: np.ndarray,
        new_obs: Any,
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        # new_obs: the raw observation each environment now shows (the reset one after an episode ends)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)  # type: ignore[misc]
        for extractor in normalizing_extractors(self.policy):  # type: ignore[attr-defined]
            extractor.update(new_obs)
