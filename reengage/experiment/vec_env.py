"""Training environments that a checkpoint can pickle, mid-episode included.

A checkpoint pickles the training VecEnv so an interrupted run resumes the episodes in flight. Two
things stand in the way, and this module removes both:

* stable-baselines3's ``SubprocVecEnv`` holds pipes and processes and cannot be pickled:
  :class:`PicklableSubprocVecEnv` pickles the environment objects themselves (fetched from the
  workers, whole wrapper chain included) and, when unpickled, starts fresh workers around them;
* gymnasium-robotics environments are ``EzPickle``: pickling one records its constructor arguments,
  and unpickling builds a *fresh, never reset* environment (the physics state, the goal and the random
  generator are lost; stepping it fails). :func:`dumps_env` pickles MuJoCo environments by their full
  state instead (``MjModel`` and ``MjData`` pickle), so a resumed episode continues exactly.

:class:`SnapshotWrapper`, the outermost wrapper of every training environment, routes its pickling
through :func:`dumps_env`.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cloudpickle
import gymnasium as gym
from stable_baselines3.common.vec_env import SubprocVecEnv

from .unpickling import loads


def _is_mujoco_env(obj: Any) -> bool:
    if "mujoco" not in sys.modules or not isinstance(obj, gym.Env) or isinstance(obj, gym.Wrapper):
        return False
    return isinstance(getattr(obj, "__dict__", {}).get("data"), sys.modules["mujoco"].MjData)


def _rebuild_env(cls: Any, state: dict[str, Any]) -> gym.Env:
    env = cls.__new__(cls)
    env.__dict__.update(state)
    return env


class _FullStatePickler(cloudpickle.Pickler):
    """cloudpickle, except that MuJoCo environments are pickled with their whole ``__dict__`` (physics included)."""

    def reducer_override(self, obj: Any) -> Any:
        if _is_mujoco_env(obj):
            return _rebuild_env, (type(obj), dict(obj.__dict__))
        return super().reducer_override(obj)


def dumps_env(env: gym.Env) -> bytes:
    """Pickle an environment with its state, MuJoCo physics included (see the module's docstring)."""
    buffer = io.BytesIO()
    _FullStatePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(env)
    return buffer.getvalue()


class SnapshotWrapper(gym.Wrapper):
    """Outermost wrapper of each training environment: pickles what it wraps with :func:`dumps_env`."""

    def snapshot_bytes(self) -> bytes:
        return dumps_env(self.env)

    def __getstate__(self) -> dict[str, Any]:
        return {"env_bytes": self.snapshot_bytes()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        gym.Wrapper.__init__(self, loads(state["env_bytes"]))


def _restore(payload: bytes) -> Callable[[], gym.Env]:
    def factory() -> gym.Env:
        return SnapshotWrapper(loads(payload))

    return factory


class PicklableSubprocVecEnv(SubprocVecEnv):
    """``SubprocVecEnv`` whose pickled state is its environments (each wrapped in :class:`SnapshotWrapper`)."""

    def __init__(self, env_fns: list[Callable[[], gym.Env]], start_method: str | None = None) -> None:
        """``env_fns`` must return environments whose outermost wrapper is :class:`SnapshotWrapper`.

        ``start_method`` defaults to ``fork`` where the platform has it: the workers only step
        environments (no torch), and a forkserver worker re-imports torch and stable-baselines3,
        which takes 5 to 20 s per start on this project's loaded 2-core machine.
        """
        if start_method is None and "fork" in multiprocessing.get_all_start_methods():
            start_method = "fork"
        self._start(env_fns, start_method)

    def _start(self, env_fns: list[Callable[[], gym.Env]], start_method: str | None) -> None:
        self._start_method = start_method
        if start_method == "fork":
            # a forked worker inherits its siblings' pipe ends, so after the learner dies (a kill, the
            # case checkpoints exist for) no worker sees EOF: each exits when its parent is gone
            parent = os.getpid()
            env_fns = [_exiting_with_parent(factory, parent) for factory in env_fns]
        SubprocVecEnv.__init__(self, env_fns, start_method=start_method)

    def __getstate__(self) -> dict[str, Any]:
        return {"envs": self.env_method("snapshot_bytes"), "start_method": self._start_method}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # the restored environments are already wrapped: start workers around them as they are
        self._start([_restore(payload) for payload in state["envs"]], state["start_method"])


def _exiting_with_parent(factory: Callable[[], gym.Env], parent: int) -> Callable[[], gym.Env]:
    def start() -> gym.Env:
        # a forked worker inherits the learner's Python signal handlers (train_run turns SIGTERM into a
        # "checkpoint soon" flag): restore the default so terminate() ends it, and ignore the terminal's
        # Ctrl-C, which the learner handles (its checkpoint still needs the workers)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(0)

        threading.Thread(target=watch, daemon=True, name="exit-with-learner").start()
        return factory()

    return start
