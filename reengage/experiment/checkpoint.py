"""Checkpoints that resume a training run exactly where it stopped.

A checkpoint is a folder with the model (weights and optimisers, ``model.zip``), the replay buffer,
and ``state.pkl``: the training environment as it stands (mid-episode included), every random
number generator the run draws from, and the run's own bookkeeping. It is written to a temporary
folder and swapped in whole, so a run killed while writing keeps its previous checkpoint.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import load_from_pkl

MODEL_FILE = "model.zip"
BUFFER_FILE = "replay_buffer.pkl"
STATE_FILE = "state.pkl"


def previous_checkpoint(directory: Path) -> Path:
    """Where the last checkpoint waits while a new one is swapped in (left behind by a kill mid-swap)."""
    directory = Path(directory)
    return directory.with_name(directory.name + ".old")


def capture_rng_states(model: Any) -> dict[str, Any]:
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "action_space": model.action_space,
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    if hasattr(model, "get_reengage_rng_state"):
        states["reengage"] = model.get_reengage_rng_state()
    return states


def restore_rng_states(model: Any, states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    # loading a model re-seeds its action space; the random-exploration phase draws from it
    model.action_space = states["action_space"]
    if "reengage" in states:
        model.set_reengage_rng_state(states["reengage"])


def save_checkpoint(directory: Path, model: Any, run_state: dict[str, Any]) -> None:
    directory = Path(directory)
    staging = directory.with_name(directory.name + ".tmp")
    previous = previous_checkpoint(directory)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save(staging / MODEL_FILE)
    model.save_replay_buffer(staging / BUFFER_FILE)
    payload = {"env": model.get_env(), "rng": capture_rng_states(model), "run_state": run_state}
    with open(staging / STATE_FILE, "wb") as handle:
        cloudpickle.dump(payload, handle)
    if directory.exists():
        shutil.rmtree(previous, ignore_errors=True)
        directory.rename(previous)
    staging.rename(directory)
    shutil.rmtree(previous, ignore_errors=True)


def find_checkpoint(directory: Path) -> Path | None:
    """The checkpoint folder to resume from; a swap cut short leaves the previous one as ``.old``."""
    directory = Path(directory)
    for candidate in (directory, previous_checkpoint(directory)):
        if (candidate / STATE_FILE).exists() and (candidate / MODEL_FILE).exists():
            return candidate
    return None


def load_checkpoint(directory: Path, agent_cls: type, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild the agent, its replay buffer, environment and random states; returns (model, run_state)."""
    with open(Path(directory) / STATE_FILE, "rb") as handle:
        payload = cloudpickle.load(handle)
    # force_reset=False keeps the saved last observation: the episode in flight goes on
    model = agent_cls.load(Path(directory) / MODEL_FILE, env=payload["env"], device=device, force_reset=False)
    buffer_path = Path(directory) / BUFFER_FILE
    if issubclass(model.replay_buffer_class, ReplayBuffer):
        # the episode in flight continues: do not mark the buffer's last trajectory as finished
        model.load_replay_buffer(buffer_path, truncate_last_traj=False)
    else:
        # stable-baselines3's loader accepts ReplayBuffer subclasses only (not, e.g., GoalSetReplayBuffer)
        model.replay_buffer = load_from_pkl(buffer_path)
    restore_rng_states(model, payload["rng"])
    return model, payload["run_state"]
