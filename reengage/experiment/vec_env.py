"""Parallel training environments that a checkpoint can pickle, mid-episode included.

A checkpoint pickles the training VecEnv so an interrupted run resumes the episodes in flight.
stable-baselines3's ``SubprocVecEnv`` holds pipes and processes and cannot be pickled; this subclass
pickles the environment objects themselves (fetched from the workers, whole wrapper chain included:
Monitor, TimeLimit and the environment with its random generator) and, when unpickled, starts fresh
workers around those objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cloudpickle
import gymnasium as gym
from stable_baselines3.common.vec_env import SubprocVecEnv


class SnapshotWrapper(gym.Wrapper):
    """Outermost wrapper of each worker's environment: serialises what it wraps on request."""

    def snapshot_bytes(self) -> bytes:
        return cloudpickle.dumps(self.env)


def _restore(payload: bytes) -> Callable[[], gym.Env]:
    def factory() -> gym.Env:
        return SnapshotWrapper(cloudpickle.loads(payload))

    return factory


class PicklableSubprocVecEnv(SubprocVecEnv):
    """``SubprocVecEnv`` whose pickled state is its environments (each wrapped in :class:`SnapshotWrapper`)."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], start_method: str | None = None) -> None:
        self._start_method = start_method
        super().__init__([_wrap_factory(factory) for factory in env_fns], start_method=start_method)

    def __getstate__(self) -> dict[str, Any]:
        return {"envs": self.env_method("snapshot_bytes"), "start_method": self._start_method}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # the restored environments are already wrapped: start workers around them as they are
        SubprocVecEnv.__init__(self, [_restore(payload) for payload in state["envs"]], start_method=state["start_method"])
        self._start_method = state["start_method"]


def _wrap_factory(factory: Callable[[], gym.Env]) -> Callable[[], gym.Env]:
    def wrapped() -> gym.Env:
        return SnapshotWrapper(factory())

    return wrapped
