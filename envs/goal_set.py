"""Shared machinery of the goal-set environments of Multi-ReenGAGE (Sec. 8.5, App. G.6 of the method).

An environment of this family rewards reaching *any* of up to ``n_max`` goals given at reset. The goal
set is a padded array of ``n_max`` slots with one gate per slot (App. G.6.1): ``gates[i] = 1`` marks an
active goal, ``0`` a padding slot whose coordinates are the dummy value 0. The observation is a Dict:

* ``"observation"`` -- the state, whose slice :attr:`GoalSetEnv.achieved_slice` is the achieved goal
  (the rounded position);
* ``"goals"``       -- ``(n_max, goal_dim)`` goal coordinates;
* ``"gates"``       -- ``(n_max,)`` gates in {0, 1}.

Rewards follow Eq. G.16: ``R_item(s', g_i) = b_i^2 * 1[achieved(s') = g_i]`` and ``R = sum_i R_item``
(Eq. 8.14; the goals of a set are distinct, so at most one item fires). The item vector is in
``info["item_rewards"]`` at every step and comes from the vectorised :meth:`GoalSetEnv.item_rewards`.

The concrete environments (one per file: ``drive_seek.py``, ``noisy_seek.py``) supply the dynamics
and the goal sampler; this module holds the padding, rewards and the Fig. 8.4 (a, c) style drawing.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

N_MAX = 200
STATE_KEY = "observation"
GOALS_KEY = "goals"
GATES_KEY = "gates"
RENDER_MODES = ("rgb_array",)


def round_half_up(x: np.ndarray) -> np.ndarray:
    """Round to the nearest integer, halves upwards (numpy's ``round`` goes to even, which would make
    the achieved cell depend on the parity of the coordinate)."""
    return np.floor(np.asarray(x) + 0.5)


def pad_goal_set(goals: np.ndarray, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """``(n, d)`` goals -> ``(n_max, d)`` coordinates (padding 0) and ``(n_max,)`` gates (1 active, 0 padding)."""
    goals = np.asarray(goals, dtype=np.float32)
    n = goals.shape[0]
    if n > n_max:
        raise ValueError(f"a goal set of {n} goals does not fit n_max={n_max}")
    padded = np.zeros((n_max, goals.shape[1]), dtype=np.float32)
    padded[:n] = goals
    gates = np.zeros(n_max, dtype=np.float32)
    gates[:n] = 1.0
    return padded, gates


def item_rewards(achieved_goal: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
    """Eq. G.16's per-goal reward ``b_i^2 * 1[achieved = g_i]``; vectorised over any leading batch shape.

    Shapes: ``achieved_goal (..., d)``, ``goals (..., n, d)``, ``gates (..., n)`` -> ``(..., n)`` float32.
    Achieved goals and goals are integer coordinates, so equality is exact.
    """
    achieved = np.asarray(achieved_goal, dtype=np.float32)[..., None, :]
    hit = np.all(np.asarray(goals, dtype=np.float32) == achieved, axis=-1)
    gates = np.asarray(gates, dtype=np.float32)
    return (hit * gates**2).astype(np.float32)


class GoalSetEnv(gym.Env):
    """Base class: padded goal set with gates, item rewards, episode bookkeeping and rendering.

    Subclasses set ``state_dim``, ``achieved_slice``, ``action_space`` and implement
    :meth:`_sample_goals`, :meth:`_reset_state`, :meth:`_move` and :meth:`_state_vector`.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}
    state_dim: int
    goal_dim = 2
    achieved_slice: slice
    #: drawing window: fixed box for bounded worlds, None to fit the episode
    render_box: float | None = None

    def __init__(self, n_max: int = N_MAX, horizon: int = 40, render_mode: str | None = None) -> None:
        if int(n_max) != n_max or n_max < 1:
            raise ValueError(f"n_max must be a positive integer, got {n_max!r}")
        if int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon must be a positive integer, got {horizon!r}")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"render_mode must be one of {RENDER_MODES} or None, got {render_mode!r}")
        self.n_max = int(n_max)
        self.horizon = int(horizon)
        self.render_mode = render_mode
        self.observation_space = spaces.Dict(
            {
                STATE_KEY: self._state_space(),
                GOALS_KEY: self._goal_space(),
                GATES_KEY: spaces.Box(0.0, 1.0, shape=(self.n_max,), dtype=np.float32),
            }
        )
        self._goals = np.zeros((self.n_max, self.goal_dim), dtype=np.float32)
        self._gates = np.zeros(self.n_max, dtype=np.float32)
        self._steps = 0
        self._path: list[np.ndarray] = []
        self._reached = np.zeros(self.n_max, dtype=bool)
        self._visited: list[np.ndarray] = []
        self._return = 0.0

    # -- subclass pieces ---------------------------------------------------------------------
    def _state_space(self) -> spaces.Box:
        raise NotImplementedError

    def _goal_space(self) -> spaces.Box:
        raise NotImplementedError

    def _sample_goals(self) -> np.ndarray:
        """A goal set ``(n, goal_dim)`` of distinct integer points, drawn from ``self.np_random``."""
        raise NotImplementedError

    def _reset_state(self) -> None:
        raise NotImplementedError

    def _move(self, action: np.ndarray) -> None:
        raise NotImplementedError

    def _state_vector(self) -> np.ndarray:
        raise NotImplementedError

    def _position(self) -> np.ndarray:
        """Continuous position, for the drawn path."""
        raise NotImplementedError

    # -- rewards -------------------------------------------------------------------------------
    def item_rewards(self, achieved_goal: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
        """Vectorised ``R_item`` (Eq. G.16), see :func:`item_rewards`."""
        return item_rewards(achieved_goal, goals, gates)

    def total_reward(self, achieved_goal: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
        """Scalar reward ``sum_i R_item`` (Eq. 8.14), vectorised over leading batch dimensions.

        Deliberately not called ``compute_reward``: stable-baselines3's checker takes any env with that
        method for a HER GoalEnv and then demands ``achieved_goal``/``desired_goal`` keys, which a goal
        *set* does not have (HER does not apply here, Sec. 8.5).
        """
        return item_rewards(achieved_goal, goals, gates).sum(axis=-1)

    def achieved_goal(self, state: np.ndarray) -> np.ndarray:
        """The rounded position inside a state vector (any leading batch shape)."""
        return np.asarray(state)[..., self.achieved_slice]

    # -- episode -------------------------------------------------------------------------------
    @property
    def goal_set(self) -> np.ndarray:
        """The active goals of the current episode, ``(n, goal_dim)``."""
        return self._goals[self._gates > 0].copy()

    def _observation(self) -> dict[str, np.ndarray]:
        return {
            STATE_KEY: self._state_vector().astype(np.float32),
            GOALS_KEY: self._goals.copy(),
            GATES_KEY: self._gates.copy(),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        goals = None if options is None else options.get("goals")
        if goals is None:
            goals = self._sample_goals()
        goals = np.asarray(goals, dtype=np.float32).reshape(-1, self.goal_dim)
        self._goals, self._gates = pad_goal_set(goals, self.n_max)
        self._steps = 0
        self._reset_state()
        self._path = [self._position().copy()]
        self._reached = np.zeros(self.n_max, dtype=bool)
        self._visited = []
        self._return = 0.0
        info = {"item_rewards": np.zeros(self.n_max, dtype=np.float32), "n_goals": int(self._gates.sum())}
        return self._observation(), info

    def step(self, action: np.ndarray):
        if self._steps >= self.horizon:
            raise RuntimeError("step() called after the episode ended; call reset()")
        self._move(np.asarray(action, dtype=np.float32).reshape(self.action_space.shape))
        self._steps += 1
        state = self._state_vector()
        achieved = self.achieved_goal(state)
        items = self.item_rewards(achieved, self._goals, self._gates)
        self._reached |= items > 0
        self._path.append(self._position().copy())
        self._visited.append(np.asarray(achieved, dtype=np.float32).copy())
        reward = float(items.sum())
        self._return += reward
        info = {"item_rewards": items, "is_success": float(reward > 0)}
        truncated = self._steps >= self.horizon
        return self._observation(), reward, False, truncated, info

    # -- drawing (Fig. 8.4 a, c) -----------------------------------------------------------------
    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return self.draw()

    def draw(self, size_inches: float = 4.0, dpi: int = 80, title: str | None = None) -> np.ndarray:
        """RGB picture of the episode so far: cyan goals never reached, blue goals reached, magenta
        rounded non-goal cells visited, and the path of the continuous position in grey."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(size_inches, size_inches), dpi=dpi)
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        active = self._gates > 0
        goals = self._goals[active]
        reached = self._reached[active]
        visited = np.array(self._visited, dtype=np.float32).reshape(-1, self.goal_dim)
        if len(visited):
            goal_cells = {tuple(g) for g in goals.tolist()}
            off_goal = np.array([v for v in visited.tolist() if tuple(v) not in goal_cells]).reshape(-1, 2)
            ax.scatter(off_goal[:, 0], off_goal[:, 1], s=14, c="magenta", label="visited, no goal", zorder=2)
        ax.scatter(goals[~reached, 0], goals[~reached, 1], s=14, c="cyan", label="goal, never reached", zorder=2)
        ax.scatter(goals[reached, 0], goals[reached, 1], s=14, c="blue", label="goal, reached", zorder=3)
        path = np.array(self._path, dtype=np.float64)
        # a wrap-around jump is not travelled: break the line there
        jumps = np.linalg.norm(np.diff(path, axis=0), axis=1) > 5.0
        xs, ys = [path[0, 0]], [path[0, 1]]
        for point, jump in zip(path[1:], jumps):
            if jump:
                xs.append(np.nan)
                ys.append(np.nan)
            xs.append(point[0])
            ys.append(point[1])
        ax.plot(xs, ys, c="0.3", lw=1.0, zorder=1)
        ax.scatter(path[:1, 0], path[:1, 1], marker="x", c="black", s=30, zorder=4, label="start")
        if self.render_box is not None:
            lim = self.render_box + 0.7
            ax.set_xlim(-lim, lim)
            ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, loc="upper right")
        default_title = f"{type(self).__name__}: return {self._return:g} after {self._steps} steps"
        ax.set_title(title or default_title, fontsize=7)
        fig.tight_layout()
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()
