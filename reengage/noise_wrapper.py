"""Training with the smoothing noise: gymnasium ObservationWrappers that apply a SmoothingConfig's noise.

Shared by training (:mod:`reengage.experiment.build` wraps a run's environments with ``observation_noise``) and
certification (:mod:`reengage.robustness`), so it sits below both packages.

A base policy that never saw noise is usually vacuous under smoothing; training it on the same noisy
observations (Cohen et al.'s Gaussian data augmentation, Ch. 2's ablated training) fixes that. The wrappers draw
from their own seeded generator and change the observation space of the noised keys to float32 Box (so that SB3
buffers keep 0.5 ablation values and Gaussian noise instead of casting them to int8); a float64 key stays float64 (its precision is kept).

Caveat for HER: HER recomputes rewards from the stored ``achieved_goal``; if that key is noised, relabelled rewards
are computed on noisy achieved goals. Use noise on ``achieved_goal`` with HER only if that is what you want.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .observation_noise import DEFAULT_KEYS, SmoothingConfig


class SmoothingNoiseWrapper(gym.ObservationWrapper):
    """Applies one fresh draw of ``config``'s noise to every observation (reset and step)."""

    def __init__(self, env: gym.Env, config: SmoothingConfig, seed: int | None = None) -> None:
        super().__init__(env)
        self.config = config
        self._rng = np.random.default_rng(seed)
        obs_space = env.observation_space
        self._dict = isinstance(obs_space, spaces.Dict)
        self.key_sizes = config.key_sizes(obs_space)
        self.d = config.n_features(obs_space)
        self._groups = config.partition(self.d) if config.kind == "deterministic_ablation" else None
        self.observation_space = self._noisy_space(obs_space)

    @staticmethod
    def _float_dtype(space: spaces.Space) -> type:
        return np.float64 if np.dtype(space.dtype) == np.float64 else np.float32

    def _noisy_box(self, space: spaces.Space) -> spaces.Box:
        dtype = self._float_dtype(space)
        if self.config.kind == "gaussian":
            return spaces.Box(-np.inf, np.inf, shape=space.shape, dtype=dtype)
        low = np.asarray(getattr(space, "low", 0.0), dtype=dtype)
        high = np.asarray(getattr(space, "high", 1.0), dtype=dtype)
        null = dtype(self.config.null_value)
        return spaces.Box(
            np.minimum(np.broadcast_to(low, space.shape), null),
            np.maximum(np.broadcast_to(high, space.shape), null),
            shape=space.shape,
            dtype=dtype,
        )

    def _noisy_space(self, space: spaces.Space) -> spaces.Space:
        if not self._dict:
            return self._noisy_box(space)
        return spaces.Dict({k: (self._noisy_box(s) if k in self.config.keys else s) for k, s in space.spaces.items()})

    def observation(self, observation: Any) -> Any:
        obs = dict(observation) if self._dict else {"obs": observation}
        flat = np.concatenate([np.asarray(obs[k], dtype=np.float64).reshape(-1) for k in self.config.keys])
        cfg = self.config
        if cfg.kind == "gaussian":
            noisy = flat + cfg.sigma * self._rng.standard_normal(self.d)
        elif cfg.kind == "ablation":
            kept = self._rng.choice(self.d, size=cfg.retain, replace=False)
            noisy = np.full(self.d, cfg.null_value)
            noisy[kept] = flat[kept]
        else:
            group = self._rng.integers(cfg.groups)
            noisy = np.where(self._groups == group, flat, cfg.null_value)
        start = 0
        for k in cfg.keys:
            size = self.key_sizes[k]
            shape = np.shape(obs[k])
            space = self.observation_space.spaces[k] if self._dict else self.observation_space
            obs[k] = noisy[start : start + size].reshape(shape).astype(space.dtype)
            start += size
        return obs if self._dict else obs["obs"]


def GaussianObservationNoise(
    env: gym.Env, sigma: float, keys: Sequence[str] = DEFAULT_KEYS, seed: int | None = None
) -> SmoothingNoiseWrapper:
    """Isotropic N(0, sigma^2) on ``keys`` (use ``keys=('obs',)`` for a plain Box observation)."""
    return SmoothingNoiseWrapper(env, SmoothingConfig(kind="gaussian", sigma=sigma, keys=tuple(keys)), seed)


def AblationObservationNoise(
    env: gym.Env,
    retain: int | None = None,
    groups: int | None = None,
    keys: Sequence[str] = DEFAULT_KEYS,
    null_value: float = 0.5,
    partition_seed: int = 0,
    seed: int | None = None,
) -> SmoothingNoiseWrapper:
    """Randomized ablation (give ``retain``) or deterministic ablation with a random group per step (``groups``)."""
    if (retain is None) == (groups is None):
        raise ValueError("give exactly one of retain (randomized ablation) or groups (deterministic ablation)")
    kind = "ablation" if retain is not None else "deterministic_ablation"
    cfg = SmoothingConfig(
        kind=kind,
        retain=retain,
        groups=groups,
        keys=tuple(keys),
        null_value=null_value,
        partition_seed=partition_seed,
    )
    return SmoothingNoiseWrapper(env, cfg, seed)


def wrap_with_noise(env: gym.Env, config: SmoothingConfig | dict | None, seed: int | None = None) -> gym.Env:
    """What train.py calls: ``env`` unchanged for ``None``, else wrapped with the config's noise."""
    if config is None:
        return env
    if isinstance(config, dict):
        config = SmoothingConfig.from_dict(config)
    return SmoothingNoiseWrapper(env, config, seed)
