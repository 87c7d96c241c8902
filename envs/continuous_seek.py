"""ContinuousSeek (Sec. 8.3 of the method): move a point to a goal in a d-dimensional box.

State and goal live in ``[-D, D]^d``, actions in ``[-1, 1]^d``; ``s' = clip(s + a)``, start at the
origin, ``horizon`` steps per episode. The sparse reward is ``-1 + 1[||s' - g||_inf <= tolerance]``;
the goal is not consumed and reaching it does not end the episode (it ends by time-out only, so
every transition bootstraps and HER relabelling never meets a stale ``done`` flag).

The dense variant rewards ``-||s' - g||_2``, which is differentiable in the goal; its torch form,
:meth:`ContinuousSeekEnv.differentiable_reward`, is what the dense ReenGAGE loss (Eq. 8.8) calls.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from .rendering import RENDER_MODES, check_render_mode, draw_point_and_goal

REWARD_TYPES = ("sparse", "dense")


class ContinuousSeekEnv(gym.Env):
    """Goal-conditioned point mass in ``[-box, box]^d`` with Dict observations for HER."""

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        d: int = 5,
        box: float = 5.0,
        tolerance: float = 0.1,
        horizon: int = 10,
        reward_type: str = "sparse",
        render_mode: str | None = None,
    ) -> None:
        if int(d) != d or d < 1:
            raise ValueError(f"d must be a positive integer, got {d!r}")
        if box <= 0:
            raise ValueError(f"box must be positive, got {box!r}")
        if tolerance <= 0:
            raise ValueError(f"tolerance must be positive, got {tolerance!r}")
        if int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type must be one of {REWARD_TYPES}, got {reward_type!r}")
        self.d = int(d)
        self.box = float(box)
        self.tolerance = float(tolerance)
        self.horizon = int(horizon)
        self.reward_type = reward_type
        self.render_mode = check_render_mode(render_mode)

        point = spaces.Box(-self.box, self.box, shape=(self.d,), dtype=np.float32)
        self.observation_space = spaces.Dict({"observation": point, "achieved_goal": point, "desired_goal": point})
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.d,), dtype=np.float32)

        self._state = np.zeros(self.d, dtype=np.float32)
        self._goal = np.zeros(self.d, dtype=np.float32)
        self._steps = 0
        self._ever_reached = False
        self._path: list[np.ndarray] = [self._state.copy()]

    # -- rewards ---------------------------------------------------------------------------
    def goal_reached(self, achieved_goal: np.ndarray, desired_goal: np.ndarray) -> np.ndarray:
        """``||achieved - desired||_inf <= tolerance`` over the last axis (any leading batch shape)."""
        gap = np.abs(np.asarray(achieved_goal, dtype=np.float64) - np.asarray(desired_goal, dtype=np.float64))
        return gap.max(axis=-1) <= self.tolerance

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None) -> np.ndarray:
        """Reward of reaching ``achieved_goal`` when aiming at ``desired_goal``; vectorised over batches."""
        if self.reward_type == "sparse":
            return self.goal_reached(achieved_goal, desired_goal).astype(np.float32) - 1.0
        gap = np.asarray(achieved_goal, dtype=np.float64) - np.asarray(desired_goal, dtype=np.float64)
        return (-np.linalg.norm(gap, axis=-1)).astype(np.float32)

    @property
    def reward_range(self) -> tuple[float, float]:
        """True per-step reward range (read by the return certificate of reengage.robustness): sparse
        ``{-1, 0}``; dense ``-||s' - g||_2`` with both points in ``[-box, box]^d``, so ``>= -2 box sqrt(d)``."""
        if self.reward_type == "sparse":
            return (-1.0, 0.0)
        return (-2.0 * self.box * float(np.sqrt(self.d)), 0.0)

    def differentiable_reward(self, achieved_goal: torch.Tensor, desired_goal: torch.Tensor) -> torch.Tensor:
        """Torch form of the dense reward, differentiable in ``desired_goal``; shape (B, 1)."""
        if self.reward_type != "dense":
            raise ValueError(
                "differentiable_reward exists only for reward_type='dense'; the sparse reward is a step "
                f"function of the goal (this env has reward_type={self.reward_type!r})"
            )
        # the epsilon keeps the gradient finite when the goal sits exactly on the achieved point
        gap = achieved_goal - desired_goal
        return -torch.sqrt((gap**2).sum(dim=-1, keepdim=True) + 1e-12)

    # -- dynamics --------------------------------------------------------------------------
    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "observation": self._state.copy(),
            "achieved_goal": self._state.copy(),
            "desired_goal": self._goal.copy(),
        }

    def __setstate__(self, state: dict) -> None:
        # environments pickled into checkpoints before render() existed have no path yet
        self.__dict__.update(state)
        if "_path" not in state:
            self._path = [self._state.copy()]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = np.zeros(self.d, dtype=np.float32)
        self._goal = self.np_random.uniform(-self.box, self.box, size=self.d).astype(np.float32)
        self._steps = 0
        self._ever_reached = False
        self._path = [self._state.copy()]
        return self._observation(), {"is_success": 0.0, "ever_reached": 0.0}

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(self.d), -1.0, 1.0)
        self._state = np.clip(self._state + action, -self.box, self.box).astype(np.float32)
        self._steps += 1
        reached = bool(self.goal_reached(self._state, self._goal))
        self._ever_reached = self._ever_reached or reached
        self._path.append(self._state.copy())
        reward = float(self.compute_reward(self._state, self._goal))
        info = {"is_success": float(reached), "ever_reached": float(self._ever_reached)}
        truncated = self._steps >= self.horizon
        return self._observation(), reward, False, truncated, info

    # -- drawing ---------------------------------------------------------------------------
    def render(self) -> np.ndarray | None:
        """``rgb_array``: the first two coordinates of the episode's path and of the goal (with its
        tolerance square), for any d; ``None`` without a render mode."""
        if self.render_mode is None:
            return None
        shown = "x1" if self.d == 1 else "x1, x2"
        caption = f"d={self.d} ({shown}) step {self._steps}/{self.horizon}" + (" reached" if self._ever_reached else "")
        return draw_point_and_goal(self._path, self._goal, self.box, self.tolerance, caption)
