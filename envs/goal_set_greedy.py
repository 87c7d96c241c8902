"""The "perfect greedy" baselines of Fig. 8.4: head for the nearest individual goal, ignore the rest.

Both environments are built so that this is not optimal (a lone goal is hard to hit under NoisySeek's
noise; DriveSeek's car cannot stop on a goal or turn sharply), which is why the whole set matters.
Each agent offers ``predict(obs, state=None, episode_start=None, deterministic=True)`` like a
stable-baselines3 model and accepts a single observation or a VecEnv batch. The command that evaluates
them over seeded episodes is ``python -m reengage.greedy``.

* NoisySeek: the unit action towards the nearest active goal (Euclidean, from the continuous
  position); zero once exactly on it.
* DriveSeek: steer towards the nearest active goal other than the cell the car is in (distance on the
  torus of side 20, the shortest way round), turning by at most 0.5 rad per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .drive_seek import HALF_WIDTH, MAX_TURN
from .goal_set import GATES_KEY, GOALS_KEY, STATE_KEY


def _batched(obs: dict[str, np.ndarray], state_dim: int) -> tuple[dict[str, np.ndarray], bool]:
    state = np.asarray(obs[STATE_KEY])
    single = state.ndim == 1
    if single:
        obs = {key: np.asarray(value)[None] for key, value in obs.items()}
    if obs[STATE_KEY].shape[-1] != state_dim:
        raise ValueError(f"expected states of size {state_dim}, got shape {obs[STATE_KEY].shape}")
    return obs, single


class GreedyAgent:
    """Common ``predict`` plumbing; subclasses implement :meth:`act` on one observation."""

    state_dim: int

    def act(self, state: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        obs, single = _batched(observation, self.state_dim)
        actions = np.stack(
            [self.act(obs[STATE_KEY][i], obs[GOALS_KEY][i], obs[GATES_KEY][i]) for i in range(len(obs[STATE_KEY]))]
        ).astype(np.float32)
        return (actions[0] if single else actions), None


class NoisySeekGreedy(GreedyAgent):
    state_dim = 4

    def act(self, state: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
        active = goals[gates > 0]
        if len(active) == 0:
            return np.zeros(2)
        gaps = active - state[None, :2]
        gap = gaps[np.argmin(np.linalg.norm(gaps, axis=1))]
        norm = float(np.linalg.norm(gap))
        return gap / norm if norm > 0 else np.zeros(2)


class DriveSeekGreedy(GreedyAgent):
    state_dim = 6

    def act(self, state: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
        position, cell = state[:2], state[2:4]
        heading = float(np.arctan2(state[4], state[5]))
        active = goals[gates > 0]
        active = active[np.any(active != cell[None, :], axis=1)]
        if len(active) == 0:
            return np.zeros(1)
        period = 2.0 * HALF_WIDTH
        gaps = (active - position[None, :] + HALF_WIDTH) % period - HALF_WIDTH  # shortest way round
        gap = gaps[np.argmin(np.linalg.norm(gaps, axis=1))]
        wanted = float(np.arctan2(gap[1], gap[0]))
        turn = (wanted - heading + np.pi) % (2.0 * np.pi) - np.pi
        return np.array([np.clip(turn, -MAX_TURN, MAX_TURN)])


GREEDY_AGENTS = {
    "reengage/DriveSeek-v0": DriveSeekGreedy,
    "reengage/NoisySeek-v0": NoisySeekGreedy,
    "reengage/DriveSeek50-v0": DriveSeekGreedy,
    "reengage/NoisySeek50-v0": NoisySeekGreedy,
}


def greedy_agent(env_id: str) -> GreedyAgent:
    """The greedy baseline for a goal-set environment id."""
    if env_id not in GREEDY_AGENTS:
        raise ValueError(f"no greedy agent for {env_id!r}; valid ids: {sorted(GREEDY_AGENTS)}")
    return GREEDY_AGENTS[env_id]()
