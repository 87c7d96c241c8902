"""DriveSeek (Sec. 8.5.1, App. G.6.4.1 of the method): steer a car of constant speed through a goal set.

* Position ``s_pos`` in ``[-10, 10)^2``, wrapping at the edges onto the opposite edge (a torus of side 20).
* Speed is always 1 (l2), along a heading angle; the 1-d action ``a in [-0.5, 0.5]`` rad is added to the
  heading each step (angular acceleration), then the car moves: ``s_pos' = wrap(s_pos + (cos, sin)(heading'))``.
* Start at ``(0, 0)`` with heading 0; 40 steps per episode; no termination.
* Goals: ``n ~ U{1..200}``, then ``n`` distinct points drawn uniformly without replacement from the
  21 x 21 integer points of ``[-10, 10]^2``.
* Reward 1 when the rounded position equals an active goal (goals are not consumed).
* State (6-d): position, rounded position (the achieved goal), ``sin`` and ``cos`` of the heading.

The goal set, gates and item rewards follow :mod:`envs.goal_set`.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from .goal_set import N_MAX, GoalSetEnv, round_half_up

HALF_WIDTH = 10.0
MAX_TURN = 0.5
GRID = (
    np.stack(np.meshgrid(np.arange(-10, 11), np.arange(-10, 11), indexing="ij"), axis=-1)
    .reshape(-1, 2)
    .astype(np.float32)
)


def wrap(position: np.ndarray, half_width: float = HALF_WIDTH) -> np.ndarray:
    """Map positions onto ``[-half_width, half_width)`` periodically (the torus of DriveSeek)."""
    return (np.asarray(position) + half_width) % (2.0 * half_width) - half_width


def sample_drive_seek_goals(rng: np.random.Generator, n_max: int = N_MAX) -> np.ndarray:
    """App. G.6.4.1: ``n ~ U{1..n_max}`` distinct integer points of ``[-10, 10]^2``, uniformly."""
    n = int(rng.integers(1, n_max + 1))
    n = min(n, len(GRID))
    return GRID[rng.choice(len(GRID), size=n, replace=False)].copy()


class DriveSeekEnv(GoalSetEnv):
    """DriveSeek with a padded set of ``n_max`` goal slots (Dict observation, see :mod:`envs.goal_set`)."""

    state_dim = 6
    achieved_slice = slice(2, 4)
    render_box = HALF_WIDTH
    #: true per-step reward range: the goals of a set are distinct, so at most one item reward (1) fires
    reward_range = (0.0, 1.0)

    def __init__(self, n_max: int = N_MAX, horizon: int = 40, render_mode: str | None = None) -> None:
        super().__init__(n_max=n_max, horizon=horizon, render_mode=render_mode)
        self.action_space = spaces.Box(-MAX_TURN, MAX_TURN, shape=(1,), dtype=np.float32)
        self._pos = np.zeros(2, dtype=np.float64)
        self._heading = 0.0

    def _state_space(self) -> spaces.Box:
        low = np.array([-HALF_WIDTH, -HALF_WIDTH, -HALF_WIDTH, -HALF_WIDTH, -1.0, -1.0], dtype=np.float32)
        return spaces.Box(low, -low, dtype=np.float32)

    def _goal_space(self) -> spaces.Box:
        return spaces.Box(-HALF_WIDTH, HALF_WIDTH, shape=(self.n_max, 2), dtype=np.float32)

    def _sample_goals(self) -> np.ndarray:
        return sample_drive_seek_goals(self.np_random, self.n_max)

    def _reset_state(self) -> None:
        self._pos = np.zeros(2, dtype=np.float64)
        self._heading = 0.0

    def _move(self, action: np.ndarray) -> None:
        turn = float(np.clip(action[0], -MAX_TURN, MAX_TURN))
        # keep the angle bounded so that long episodes do not lose float precision in sin/cos
        self._heading = float(np.angle(np.exp(1j * (self._heading + turn))))
        step = np.array([np.cos(self._heading), np.sin(self._heading)])
        self._pos = wrap(self._pos + step)

    def _position(self) -> np.ndarray:
        return self._pos

    def _state_vector(self) -> np.ndarray:
        # the wrapped position lies in [-10, 10), so its rounding is an integer point of [-10, 10]^2
        rounded = round_half_up(self._pos)
        return np.concatenate([self._pos, rounded, [np.sin(self._heading), np.cos(self._heading)]]).astype(np.float32)
