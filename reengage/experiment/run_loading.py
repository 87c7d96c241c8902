"""Rebuild a trained run from its folder: the saved configuration, the environment exactly as the run
made it (observation-noise wrapper included), and the model.

This is what the evaluate command uses, and what any tool that must see the environment a model was
trained on (for example certification of a model trained with ``observation_noise``) can use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.vec_env import DummyVecEnv

from .build import agent_class, check_device, make_single_env
from .run_folder import CHECKPOINT_DIR, FINAL_MODEL, read_saved_config


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The run's saved configuration (``env_id``, ``env_kwargs``, ``observation_noise``, ``algo``,
    ``seed`` and every other key); ValueError if the folder holds no run."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"{run_dir} is not a run folder (no such folder)")
    return read_saved_config(run_dir)


def make_run_env(config: dict[str, Any], noise_seed: int | None = None, render_mode: str | None = None) -> gym.Env:
    """One environment as the run made it (the noise wrapper too, its generator seeded ``noise_seed``)."""
    if render_mode is not None:
        config = dict(config, env_kwargs={**config["env_kwargs"], "render_mode": render_mode})
    return make_single_env(config, noise_seed=noise_seed)


def model_path(run_dir: str | Path, checkpoint: bool = False) -> Path:
    """``model.zip`` of a finished run, or with ``checkpoint`` the newest checkpoint's model."""
    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT_DIR / FINAL_MODEL if checkpoint else run_dir / FINAL_MODEL
    if not path.exists():
        if checkpoint:
            raise ValueError(f"{run_dir} has no checkpoint ({path} is missing)")
        raise ValueError(
            f"{run_dir} has no {FINAL_MODEL}: the run has not finished; continue it with 'python train.py "
            f"--logdir {run_dir} --resume', or pass --checkpoint to evaluate its newest checkpoint"
        )
    return path


def load_run_model(run_dir: str | Path, device: str = "cpu", checkpoint: bool = False) -> tuple[dict[str, Any], Any]:
    """``(config, model)`` of the run in ``run_dir``."""
    config = run_config(run_dir)
    path = model_path(run_dir, checkpoint)
    check_device(device)
    # stable-baselines3 needs an env to rebuild a HER agent (its buffer is set up with one)
    env = DummyVecEnv([lambda: make_run_env(config)])
    model = agent_class(config).load(path, env=env, device=device)
    return config, model
