"""TheorySparse (Sec. 8.6.2.2 and App. G.1.2 of the method): the same hidden rotation, sparse reward.

The state is ``s = (s1; s2)`` in ``R^{2d}``; ``g, a`` in ``R^d`` with ``||a||_2 <= 1``; the reward is
``R(s, g) = g . s1`` of the state reached, and the transition has two phases::

    T(s, a) = (0; s1 + U a)   if s1 != 0     (the action acts; the reward of s' is 0 = c_low)
              (s2; 0)         if s1 == 0     (the moved point is revealed; the action is ignored)

so the reward is ``c_low = 0`` at least every other step, and there its goal gradient is 0: the sparse
ReenGAGE loss (Eq. 8.9), which never uses ``grad_g R``, applies. Proposition 8.2: it learns ``U`` from
O(d) replay transitions where the standard TD loss needs O(d^2).

``U`` comes from ``rotation_seed`` exactly as in :mod:`.theory_dense` (same seed, same U). Episodes start
at ``(s1; 0)`` with ``s1 ~ U[-1, 1]^d`` (non-zero almost surely), goal ``g ~ U[-1, 1]^d``, time-out after
``horizon`` steps.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .theory_dense import RotationTheoryEnv, project_to_unit_ball


class TheorySparseEnv(RotationTheoryEnv):
    """Sparse-reward member of the theory class: ``R = g . s1'`` and the two-phase transition."""

    #: the low reward value of the class (``R(s', g) = 0`` whenever ``s1' = 0``)
    c_low: float = 0.0

    def __init__(self, d: int = 4, rotation_seed: int = 0, horizon: int = 10) -> None:
        super().__init__(d, rotation_seed, horizon)

        # the point moves by at most 1 (l2) every other step from a start in [-1, 1]^d
        bound = 1.0 + self.horizon
        state = spaces.Box(-bound, bound, shape=(2 * self.d,), dtype=np.float32)
        achieved = spaces.Box(-bound, bound, shape=(self.d,), dtype=np.float32)
        goal = spaces.Box(-1.0, 1.0, shape=(self.d,), dtype=np.float32)
        self.observation_space = spaces.Dict({"observation": state, "achieved_goal": achieved, "desired_goal": goal})
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.d,), dtype=np.float32)

        self._state = np.zeros(2 * self.d)
        self._goal = np.zeros(self.d)
        self._steps = 0

    # -- model of the class (vectorised, float64) -------------------------------------------------
    def dynamics(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The two-phase transition over a batch of states ``(..., 2d)`` and actions ``(..., d)``."""
        states = np.asarray(states, dtype=np.float64)
        if states.shape[-1] != 2 * self.d:
            raise ValueError(f"states must have last dimension 2d={2 * self.d}, got shape {states.shape}")
        s1, s2 = states[..., : self.d], states[..., self.d :]
        moved = s1 + project_to_unit_ball(actions) @ self.U.T
        acting = np.any(s1 != 0.0, axis=-1, keepdims=True)
        zeros = np.zeros_like(s1)
        return np.concatenate([np.where(acting, zeros, s2), np.where(acting, moved, zeros)], axis=-1)

    @property
    def reward_range(self) -> tuple[float, float]:
        """True per-step reward range: the point moves (by <= 1 in l2) on at most every other step, so
        ``|g . s1| <= d + sqrt(d) ceil(horizon / 2)`` (read by reengage.robustness's return certificate)."""
        bound = self.d + float(np.sqrt(self.d)) * ((self.horizon + 1) // 2)
        return (-bound, bound)

    # -- gymnasium API ----------------------------------------------------------------------------
    def _observation(self) -> dict[str, np.ndarray]:
        state = self._state.astype(np.float32)
        return {
            "observation": state,
            "achieved_goal": state[: self.d].copy(),
            "desired_goal": self._goal.astype(np.float32),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = np.concatenate([self.np_random.uniform(-1.0, 1.0, size=self.d), np.zeros(self.d)])
        self._goal = self.np_random.uniform(-1.0, 1.0, size=self.d)
        self._steps = 0
        return self._observation(), {}
