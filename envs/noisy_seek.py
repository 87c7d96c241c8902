"""NoisySeek (Sec. 8.5.1, App. G.6.4.2 of the method): seek clustered goals under Gaussian motion noise.

* State ``s in R^2`` (unbounded), start at ``(0, 0)``; action ``a in R^2`` with ``||a||_2 <= 1`` (a
  box action is projected onto the unit disc); ``s' ~ N(s + a, I)``; 40 steps; no termination.
* Goals (:func:`sample_noisy_seek_goals`): ``n_c ~ Geometric(0.15)`` clusters (support {1, 2, ...},
  mean 1/0.15), ``n' ~ U{1..200}``, centres ``~ N(0, 10^2 I)``, cluster weights ``~ Dirichlet(1, ..., 1)``,
  each of the ``n'`` goals joins cluster j with probability p_j and is ``round(centre_j + N(0, 2^2 I))``;
  finally duplicates are removed (so a set has at most ``n'`` goals).
* Reward 1 when the rounded state equals an active goal; state (4-d): position, rounded position.

A greedy agent heading for the nearest goal is sub-optimal here: a lone goal is hard to hit under the
noise, a cluster is not.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from gymnasium import spaces

from .goal_set import N_MAX, GoalSetEnv, round_half_up

CLUSTER_P = 0.15
CENTRE_STD = 10.0
GOAL_STD = 2.0


class NoisySeekGoalDraw(NamedTuple):
    """One draw of the goal sampler with its latent variables (for tests of the distribution)."""

    goals: np.ndarray  # (n, 2) distinct integer points, in order of first appearance
    n_clusters: int
    n_requested: int  # n' before de-duplication


def sample_noisy_seek_goals(rng: np.random.Generator, n_max: int = N_MAX) -> NoisySeekGoalDraw:
    """App. G.6.4.2's clustered goal sampler; see the module docstring for the steps."""
    n_clusters = int(rng.geometric(CLUSTER_P))
    n_requested = int(rng.integers(1, n_max + 1))
    centres = rng.normal(0.0, CENTRE_STD, size=(n_clusters, 2))
    weights = rng.dirichlet(np.ones(n_clusters))
    members = rng.choice(n_clusters, size=n_requested, p=weights)
    goals = round_half_up(centres[members] + rng.normal(0.0, GOAL_STD, size=(n_requested, 2)))
    # de-duplicate, keeping first appearances in draw order (np.unique alone would sort them)
    _, first = np.unique(goals, axis=0, return_index=True)
    goals = goals[np.sort(first)].astype(np.float32)
    return NoisySeekGoalDraw(goals, n_clusters, n_requested)


class NoisySeekEnv(GoalSetEnv):
    """NoisySeek with a padded set of ``n_max`` goal slots (Dict observation, see :mod:`envs.goal_set`)."""

    state_dim = 4
    achieved_slice = slice(2, 4)
    render_box = None
    #: true per-step reward range: the goals of a set are distinct, so at most one item reward (1) fires
    reward_range = (0.0, 1.0)

    def __init__(
        self, n_max: int = N_MAX, horizon: int = 40, noise_std: float = 1.0, render_mode: str | None = None
    ) -> None:
        if not np.isfinite(noise_std) or noise_std < 0:
            raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
        super().__init__(n_max=n_max, horizon=horizon, render_mode=render_mode)
        self.noise_std = float(noise_std)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2, dtype=np.float64)

    def _state_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)

    def _goal_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, shape=(self.n_max, 2), dtype=np.float32)

    def _sample_goals(self) -> np.ndarray:
        return sample_noisy_seek_goals(self.np_random, self.n_max).goals

    def _reset_state(self) -> None:
        self._pos = np.zeros(2, dtype=np.float64)

    def _move(self, action: np.ndarray) -> None:
        action = action.astype(np.float64)
        norm = float(np.linalg.norm(action))
        if norm > 1.0:
            action = action / norm
        self._pos = self._pos + action + self.np_random.normal(0.0, self.noise_std, size=2)

    def _position(self) -> np.ndarray:
        return self._pos

    def _state_vector(self) -> np.ndarray:
        return np.concatenate([self._pos, round_half_up(self._pos)]).astype(np.float32)
