"""A checkpoint written before the smoothing noise moved below the packages still resumes: its pickled training
environment names the noise wrapper and its settings by their old modules."""

from __future__ import annotations

import pickle
import sys

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401  (registers the ids)

from reengage import noise_wrapper, observation_noise
from reengage.experiment.unpickling import MOVED_MODULES, loads
from reengage.experiment.vec_env import SnapshotWrapper
from reengage.noise_wrapper import SmoothingNoiseWrapper, wrap_with_noise
from reengage.observation_noise import SmoothingConfig


def _old_pickle(monkeypatch: pytest.MonkeyPatch, obj: object) -> bytes:
    """``obj`` pickled as the package before the move pickled it: the classes under their old modules."""
    old = {module: name for name, module in MOVED_MODULES.items()}
    for cls, module in ((SmoothingNoiseWrapper, noise_wrapper), (SmoothingConfig, observation_noise)):
        monkeypatch.setattr(cls, "__module__", old[module.__name__])
        monkeypatch.setitem(sys.modules, old[module.__name__], module)
    data = cloudpickle.dumps(obj)
    monkeypatch.undo()
    return data


def test_an_environment_pickled_under_the_old_modules_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    env = wrap_with_noise(gym.make("reengage/ContinuousSeek5-v0"), {"kind": "gaussian", "sigma": 0.1}, seed=3)
    env.reset(seed=0)
    data = _old_pickle(monkeypatch, env)
    assert b"reengage.robustness.noise_wrapper" in data and "reengage.robustness.noise_wrapper" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(data)
    restored = loads(data)
    assert isinstance(restored, SmoothingNoiseWrapper) and isinstance(restored.config, SmoothingConfig)
    # the noise generator's state came along: both draw the same noise from here on
    action = env.action_space.sample()
    assert np.array_equal(env.step(action)[0]["observation"], restored.step(action)[0]["observation"])


def test_a_checkpointed_training_environment_unpickles_through_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = SnapshotWrapper(
        wrap_with_noise(gym.make("reengage/ContinuousSeek5-v0"), {"kind": "gaussian", "sigma": 0.1}, seed=3)
    )
    snapshot.reset(seed=0)
    data = _old_pickle(monkeypatch, snapshot)
    assert b"reengage.robustness.noise_wrapper" in data  # inside the wrapped environment's bytes
    restored = cloudpickle.loads(data)  # the environment's bytes are read by SnapshotWrapper.__setstate__
    assert isinstance(restored.env, SmoothingNoiseWrapper)
