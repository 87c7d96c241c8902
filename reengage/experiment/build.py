"""Turn a resolved configuration (see :mod:`reengage.experiment.config`) into environments and an agent.

:func:`build_agent` reads the algorithm from the registry once and the configuration's extensions once, and
passes both down; :func:`agent_class` and :func:`sb3_arguments` are the same steps for callers that need one
of them alone (loading a saved model, the benchmarks).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import reengage.envs  # noqa: F401  (registers the reengage/ ids)
from reengage.algorithms import AlgoSpec, algo_spec, import_object
from reengage.envs.robotics import ensure_registered

from .extensions import Extensions, extensions_of

DEVICES = ("cpu", "cuda", "auto")


def make_bare_env(config: dict[str, Any]) -> gym.Env:
    """The run's environment as ``gym.make`` builds it from ``env_id`` and ``env_kwargs`` (no noise wrapper)."""
    ensure_registered(config["env_id"])  # gymnasium-robotics ids, or a message saying how to install them
    try:
        return gym.make(config["env_id"], **config["env_kwargs"])
    except (ValueError, TypeError) as error:
        # the environment's own check of its arguments: say which setting it was
        settings = ", ".join(f"env_kwargs.{key}={value!r}" for key, value in config["env_kwargs"].items())
        raise ValueError(f"{config['env_id']} refused {settings or 'its default arguments'}: {error}") from None


def make_single_env(config: dict[str, Any], noise_seed: int | None = None) -> gym.Env:
    """One environment of the run, with the training-time smoothing noise if the config asks for it.

    ``observation_noise`` is a :class:`reengage.observation_noise.SmoothingConfig` as a mapping (for
    example ``{kind: gaussian, sigma: 0.1, keys: [observation]}``): training under the noise the
    policy will be smoothed with keeps the smoothed policy from being vacuous.
    """
    env = make_bare_env(config)
    if config.get("observation_noise"):
        from reengage.noise_wrapper import wrap_with_noise

        env = wrap_with_noise(env, dict(config["observation_noise"]), seed=noise_seed)
    return env


def physical_memory_bytes() -> int | None:
    """The machine's physical memory, where the system says (POSIX ``sysconf``); None elsewhere."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def replay_memory_bytes(config: dict[str, Any], env: gym.Env) -> int:
    """A lower bound of the replay buffer's memory: ``buffer_size`` transitions of an observation, the next
    observation and an action (rewards, flags and any relabelling index come on top)."""

    def nbytes(space: gym.Space) -> int:
        if isinstance(space, gym.spaces.Dict):
            return sum(nbytes(child) for child in space.spaces.values())
        shape = space.shape or (1,)
        return int(np.prod(shape)) * np.dtype(space.dtype or np.float32).itemsize

    per_transition = 2 * nbytes(env.observation_space) + nbytes(env.action_space)
    return int(config["buffer_size"]) * per_transition


def check_replay_memory(config: dict[str, Any]) -> None:
    """Refuse, before anything is written, a ``buffer_size`` whose replay buffer cannot fit in memory."""
    total = physical_memory_bytes()
    if total is None or "buffer_size" not in config:
        return
    # the bare environment (no noise wrapper, which may draw random numbers): its spaces are the run's
    env = make_bare_env(config)
    try:
        needed = replay_memory_bytes(config, env)
    finally:
        env.close()
    if needed > total:
        raise ValueError(
            f"buffer_size={config['buffer_size']:,} needs at least {needed / 2**30:,.1f} GiB for the replay buffer, "
            f"more than the {total / 2**30:,.1f} GiB of memory here; choose a smaller buffer_size"
        )


def make_training_env(config: dict[str, Any], seed: int) -> VecEnv:
    from .vec_env import SnapshotWrapper

    def factory() -> gym.Env:
        # SnapshotWrapper: checkpoints pickle the env mid-episode, MuJoCo physics included
        return SnapshotWrapper(Monitor(make_single_env(config, noise_seed=seed)))

    n_envs = config.get("n_envs", 1)
    if n_envs > 1:
        from .vec_env import PicklableSubprocVecEnv

        ensure_registered(config["env_id"])  # fail here, with the message, rather than in a worker
        venv: VecEnv = PicklableSubprocVecEnv([factory] * n_envs)
    else:
        venv = DummyVecEnv([factory])
    venv.seed(seed)
    return venv


def check_device(device: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; valid devices: {', '.join(DEVICES)}")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu")
    return device


def agent_class(config: dict[str, Any]) -> type[Any]:
    """The agent class of the config: the fast training path unless ``trainer: sb3`` (or the algo has none)."""
    return _agent_class(config, algo_spec(config["algo"]), extensions_of(config))


def _agent_class(config: dict[str, Any], spec: AlgoSpec, extensions: Extensions) -> type:
    if config.get("trainer", "fast") == "fast" and spec.fast_agent is not None:
        base = import_object(spec.fast_agent)
    else:
        if config.get("trainer", "fast") == "fast":
            warnings.warn(
                f"the fast trainer has no {config['algo']!r} agent yet; training on the stock SB3 path", stacklevel=3
            )
        base = import_object(spec.agent)
    return extensions.agent_class(base)  # type: ignore[arg-type]


def sb3_arguments(config: dict[str, Any], env: VecEnv, seed: int, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """``(policy, kwargs)`` for the stable-baselines3 class of the config's algorithm, without the
    ReenGAGE arguments: what a stock SB3 agent with the same settings takes (see bench/)."""
    return _sb3_arguments(config, algo_spec(config["algo"]), env, seed, device)


def _sb3_arguments(
    config: dict[str, Any], spec: AlgoSpec, env: VecEnv, seed: int, device: str
) -> tuple[Any, dict[str, Any]]:
    policy_kwargs = {"net_arch": list(config["net_arch"]), **config["policy_kwargs"]}
    kwargs: dict[str, Any] = {
        "learning_rate": config["learning_rate"],
        "buffer_size": config["buffer_size"],
        "learning_starts": config["learning_starts"],
        "batch_size": config["batch_size"],
        "gamma": config["gamma"],
        "tau": config["tau"],
        "train_freq": config["train_freq"],
        "gradient_steps": config["gradient_steps"],
        "seed": seed,
        "device": check_device(device),
        "verbose": 0,
        "policy_kwargs": policy_kwargs,
    }
    if spec.continuous_actions:
        # the goal must reach each critic with a graph (see GoalGradientMixin)
        policy_kwargs.setdefault("share_features_extractor", False)
        std = config["action_noise_std"]
        if std:
            n_actions = int(np.prod(env.action_space.shape))
            kwargs["action_noise"] = NormalActionNoise(np.zeros(n_actions), std * np.ones(n_actions))
    if config["her"] is not None:
        if config["replay_buffer_class"] is not None:
            raise ValueError("her and replay_buffer_class are exclusive: set one of them to null")
        kwargs["replay_buffer_class"] = HerReplayBuffer
        kwargs["replay_buffer_kwargs"] = {**config["her"], **config["replay_buffer_kwargs"]}
    elif config["replay_buffer_class"] is not None:
        kwargs["replay_buffer_class"] = import_object(config["replay_buffer_class"])
        kwargs["replay_buffer_kwargs"] = dict(config["replay_buffer_kwargs"])
    policy = config["policy"]
    if ":" in policy:
        policy = import_object(policy)
    kwargs.update(config["algo_kwargs"])
    return policy, kwargs


def reengage_arguments(config: dict[str, Any]) -> dict[str, Any]:
    """The ReenGAGE term's constructor arguments that are top-level keys of the configuration (the others
    are ``algo_kwargs`` entries)."""
    arguments = {key: config[key] for key in ("reengage_alpha", "reengage_mode", "c_low")}
    if config.get("reengage_diagnostics"):
        arguments["reengage_diagnostics_every"] = config["reengage_diagnostics"]
    return arguments


def build_agent(config: dict[str, Any], env: VecEnv, seed: int, device: str = "cpu") -> Any:
    """A fresh agent for the configuration (no logger attached)."""
    spec = algo_spec(config["algo"])
    extensions = extensions_of(config)
    policy, kwargs = _sb3_arguments(config, spec, env, seed, device)
    kwargs["policy_kwargs"].update(extensions.policy_kwargs())
    agent = _agent_class(config, spec, extensions)
    try:
        return agent(policy, env, **reengage_arguments(config), **kwargs, **extensions.agent_kwargs())
    except AssertionError as error:
        # stable-baselines3 checks combinations of settings with assertions (optimize_memory_usage with a
        # dictionary replay buffer, ...): they are the user's settings, answered like every other bad setting
        raise ValueError(
            f"{agent.__name__} refuses these settings: {error or 'an assertion of its constructor failed'} "
            "(python train.py --list-keys describes every key)"
        ) from error
