"""Shared core of the bit-flipping environments (HER paper, Andrychowicz et al. 2017; App. G.2 of the method).

The state is a vector of ``n_bits`` bits; the goal is another such vector. The reward of a transition is
``R(s', g) = 0`` if ``s' == g`` and ``-1`` otherwise, and an episode lasts ``n_bits`` steps, enough to
reach any goal from any start.

Episode ends (the choice that keeps hindsight relabelling exact)
---------------------------------------------------------------
By default reaching the goal does **not** end the episode: it ends by truncation at the horizon only,
so every stored transition has ``terminated = False``. stable-baselines3's ``HerReplayBuffer`` relabels
the goal and recomputes the reward with :meth:`BitFlippingBase.compute_reward`, but it copies the stored
``done`` flag unchanged (stable-baselines3 GitHub issue #627). If success terminated the episode, every
relabelled success before the episode's end would keep ``done = 0`` (bootstrapping past a state the
environment treats as terminal), and with the ``'episode'`` strategy a relabelled copy of the final
transition would keep ``done = 1`` for a goal it did not reach (reward -1 and no bootstrap). Without termination the stored flags are 0 for every goal, original or relabelled, and the TD target
``R(s', g) + gamma * max_a Q(s', a, g)`` is right for all of them. ``terminate_on_success=True`` is
available for comparison with stable-baselines3's own ``BitFlippingEnv``; do not combine it with HER.

Since there is no no-op action, an agent cannot stay on the goal once it gets there (any flip leaves it).
Success is therefore the HER paper's: the goal was reached at some step of the episode.
``info["is_success"]`` is that sticky flag (what SB3's evaluation reads at the last step), and
``info["at_goal"]`` says whether the current state equals the goal.

Observations are ``MultiBinary`` (``int8``) in a ``Dict`` with ``observation`` (the state),
``achieved_goal`` (the state again) and ``desired_goal``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .rendering import RENDER_MODES, check_render_mode, draw_bit_rows


class BitFlippingBase(gym.Env):
    """Goal-conditioned bit flipping; subclasses choose the action space, the action's effect and the goal."""

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        n_bits: int = 10,
        horizon: int | None = None,
        terminate_on_success: bool = False,
        render_mode: str | None = None,
    ) -> None:
        if isinstance(n_bits, bool) or int(n_bits) != n_bits or n_bits < 1:
            raise ValueError(f"n_bits must be a positive integer, got {n_bits!r}")
        horizon = int(n_bits) if horizon is None else horizon
        if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
            raise ValueError(f"horizon must be a positive integer or None (= n_bits), got {horizon!r}")
        self.n_bits = int(n_bits)
        self.horizon = int(horizon)
        self.terminate_on_success = bool(terminate_on_success)
        self.render_mode = check_render_mode(render_mode)

        bits = spaces.MultiBinary(self.n_bits)
        self.observation_space = spaces.Dict({"observation": bits, "achieved_goal": bits, "desired_goal": bits})
        self.action_space = self._make_action_space()

        self._state = np.zeros(self.n_bits, dtype=np.int8)
        self._goal = np.ones(self.n_bits, dtype=np.int8)
        self._steps = 0
        self._ever_reached = False

    # -- what the variants change ----------------------------------------------------------
    def _make_action_space(self) -> spaces.Space:
        raise NotImplementedError

    def _flip_mask(self, action: Any) -> np.ndarray:
        """Boolean vector of the bits that ``action`` flips."""
        raise NotImplementedError

    def _sample_goal(self) -> np.ndarray:
        raise NotImplementedError

    # -- rewards ---------------------------------------------------------------------------
    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any = None) -> np.ndarray:
        """``0`` where every bit of ``achieved_goal`` equals ``desired_goal``, else ``-1``; float32.

        Vectorised over any leading batch shape (the last axis holds the bits), as HER relabelling needs.
        """
        achieved = np.asarray(achieved_goal)
        desired = np.asarray(desired_goal)
        if achieved.shape[-1:] != (self.n_bits,) or desired.shape[-1:] != (self.n_bits,):
            raise ValueError(
                f"goals must end in a {self.n_bits}-bit axis; got shapes {achieved.shape} and {desired.shape}"
            )
        # compare as bits: relabelled or normalised inputs may arrive as floats
        equal = np.all((achieved > 0.5) == (desired > 0.5), axis=-1)
        return equal.astype(np.float32) - 1.0

    @property
    def reward_range(self) -> tuple[float, float]:
        """True per-step reward range, rewards in ``{-1, 0}`` (read by reengage.robustness's return certificate)."""
        return (-1.0, 0.0)

    # -- dynamics --------------------------------------------------------------------------
    def _observation(self) -> dict[str, np.ndarray]:
        return {
            "observation": self._state.copy(),
            "achieved_goal": self._state.copy(),
            "desired_goal": self._goal.copy(),
        }

    def _info(self) -> dict[str, Any]:
        at_goal = bool(np.array_equal(self._state, self._goal))
        return {"is_success": float(self._ever_reached), "at_goal": float(at_goal)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.np_random.integers(0, 2, size=self.n_bits, dtype=np.int8)
        self._goal = self._sample_goal().astype(np.int8)
        self._steps = 0
        # a start that already equals the goal counts as reached (probability 2^-n)
        self._ever_reached = bool(np.array_equal(self._state, self._goal))
        return self._observation(), self._info()

    def step(self, action: Any):
        flips = self._flip_mask(action)
        self._state = np.where(flips, 1 - self._state, self._state).astype(np.int8)
        self._steps += 1
        at_goal = bool(np.array_equal(self._state, self._goal))
        self._ever_reached = self._ever_reached or at_goal
        reward = float(self.compute_reward(self._state, self._goal))
        terminated = self.terminate_on_success and at_goal
        truncated = (not terminated) and self._steps >= self.horizon
        return self._observation(), reward, terminated, truncated, self._info()

    # -- drawing ---------------------------------------------------------------------------
    def render(self) -> np.ndarray | None:
        """``rgb_array``: the state as a row of cells above the goal's row; ``None`` without a render mode."""
        if self.render_mode is None:
            return None
        matching = int(np.sum(self._state == self._goal))
        caption = f"step {self._steps}/{self.horizon}, {matching}/{self.n_bits} bits right" + (
            ", reached" if self._ever_reached else ""
        )
        return draw_bit_rows(self._state, self._goal, caption)
