"""TheoryDense (Sec. 8.6.2.1 and App. G.1.1 of the method): a rotation hidden in linear dynamics.

``g, s, a`` live in ``R^d`` with ``||a||_2 <= 1``; the reward is ``R(s, g) = g . s`` (of the state
reached) and the transition ``s' = s + U a``, where ``U`` is an unknown rotation. The environment class
is parameterised by ``U`` alone, so learning the task means learning ``U``: Proposition 8.1 says the dense
ReenGAGE loss (Eq. 8.8) does this from O(d) replay transitions and the standard TD loss needs O(d^2).

``U`` is drawn from the Haar measure on SO(d) with ``rotation_seed``, independently of the episode seed,
so one ``rotation_seed`` names one member of the class. Actions outside the unit ball are scaled back
onto its surface (radial projection), the constraint ``||a||_2 <= 1`` of the text.

Episodes start at ``s0 ~ U[-1, 1]^d`` with a goal ``g ~ U[-1, 1]^d`` and end by time-out after ``horizon``
steps; nothing terminates. The reward is differentiable in the goal: :meth:`TheoryDenseEnv.differentiable_reward`
is what the dense loss calls for ``grad_g R(s', g)``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces


def random_rotation(d: int, seed: int) -> np.ndarray:
    """A Haar-distributed rotation (orthogonal, determinant +1) of size ``d`` from ``seed``.

    QR of a Gaussian matrix with the signs of R's diagonal moved into Q is Haar on O(d); flipping one
    column when the determinant is -1 maps it to Haar on SO(d). The text calls U a rotation, and the
    model's parametrisation (a matrix exponential) covers SO(d) only.
    """
    if int(d) != d or d < 1:
        raise ValueError(f"d must be a positive integer, got {d!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7E0]))
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def project_to_unit_ball(actions: np.ndarray) -> np.ndarray:
    """Radial projection of each action (last axis) onto ``{a : ||a||_2 <= 1}``."""
    actions = np.asarray(actions, dtype=np.float64)
    norms = np.linalg.norm(actions, axis=-1, keepdims=True)
    return actions / np.maximum(norms, 1.0)


class RotationTheoryEnv(gym.Env):
    """What both theory classes share: a dimension d, a horizon, the unknown rotation U, and the reward
    ``R(s', g) = g . achieved_goal(s')`` in numpy and torch."""

    metadata: dict[str, Any] = {"render_modes": []}
    _state: np.ndarray  # set by reset(); its layout is the subclass's

    def __init__(self, d: int, rotation_seed: int, horizon: int) -> None:
        if int(d) != d or d < 1:
            raise ValueError(f"d must be a positive integer, got {d!r}")
        if int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        self.d = int(d)
        self.horizon = int(horizon)
        self.rotation_seed = int(rotation_seed)
        self.U = random_rotation(self.d, self.rotation_seed)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None) -> np.ndarray:
        """``g . achieved`` over the last axis; vectorised over leading axes."""
        achieved = np.asarray(achieved_goal, dtype=np.float64)
        desired = np.asarray(desired_goal, dtype=np.float64)
        return np.sum(achieved * desired, axis=-1).astype(np.float32)

    def differentiable_reward(self, achieved_goal: torch.Tensor, desired_goal: torch.Tensor) -> torch.Tensor:
        """Torch form, shape (B, 1); its goal gradient is the achieved goal."""
        return (achieved_goal * desired_goal).sum(dim=-1, keepdim=True)

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float64).reshape(self.d)
        self._state = self.dynamics(self._state, action)
        self._steps += 1
        # the achieved goal is the first d state coordinates in both classes (s' or s1')
        reward = float(self.compute_reward(self._state[: self.d], self._goal))
        truncated = self._steps >= self.horizon
        return self._observation(), reward, False, truncated, {}


class TheoryDenseEnv(RotationTheoryEnv):
    """Dense-reward member of the theory class: ``R = g . s'``, ``s' = s + U a``, ``U`` in SO(d)."""

    def __init__(self, d: int = 4, rotation_seed: int = 0, horizon: int = 10) -> None:
        super().__init__(d, rotation_seed, horizon)

        # s0 in [-1, 1]^d and each step moves at most 1 in l2, so no coordinate leaves [-(1+H), 1+H]
        bound = 1.0 + self.horizon
        state = spaces.Box(-bound, bound, shape=(self.d,), dtype=np.float32)
        goal = spaces.Box(-1.0, 1.0, shape=(self.d,), dtype=np.float32)
        self.observation_space = spaces.Dict({"observation": state, "achieved_goal": state, "desired_goal": goal})
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.d,), dtype=np.float32)

        self._state = np.zeros(self.d)
        self._goal = np.zeros(self.d)
        self._steps = 0

    # -- model of the class (vectorised, float64) -------------------------------------------------
    def dynamics(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """``s' = s + U a`` over a batch (last axis), actions projected onto the unit ball first."""
        states = np.asarray(states, dtype=np.float64)
        if states.shape[-1] != self.d:
            raise ValueError(f"states must have last dimension d={self.d}, got shape {states.shape}")
        return states + project_to_unit_ball(actions) @ self.U.T

    @property
    def reward_range(self) -> tuple[float, float]:
        """True per-step reward range: after t <= horizon steps ``||s||_2 <= sqrt(d) + t`` and ``||g||_2 <= sqrt(d)``,
        so ``|g . s| <= d + sqrt(d) horizon`` (read by reengage.robustness's return certificate)."""
        bound = self.d + float(np.sqrt(self.d)) * self.horizon
        return (-bound, bound)

    # -- gymnasium API ----------------------------------------------------------------------------
    def _observation(self) -> dict[str, np.ndarray]:
        state = self._state.astype(np.float32)
        return {"observation": state, "achieved_goal": state.copy(), "desired_goal": self._goal.astype(np.float32)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.np_random.uniform(-1.0, 1.0, size=self.d)
        self._goal = self.np_random.uniform(-1.0, 1.0, size=self.d)
        self._steps = 0
        return self._observation(), {}
