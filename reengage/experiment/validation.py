"""Value checks of a resolved configuration: numeric ranges, choices, and nested keys against the
signatures they reach (the SB3 agent class, the replay buffer, the policy, the environment).

Each check raises :class:`ValueError` with one line naming the key, the bad value and what is valid;
``train.py`` turns that into exit code 2. The checks are tables, so a branch that adds a config key
adds one row here (``RANGES`` or ``CHOICES``) and nothing else.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

# -- ranges and choices ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """An interval of numbers; ``None`` leaves a side unbounded."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "a finite number"


# dotted key -> valid range. A key absent from the config (or null) is not checked.
RANGES: dict[str, Range] = {
    "timesteps": Range(1),
    "buffer_size": Range(1),
    "learning_starts": Range(0),
    "batch_size": Range(1),
    "learning_rate": Range(0, low_open=True),
    "gamma": Range(0, 1, low_open=True),
    "tau": Range(0, 1, low_open=True),
    "train_freq": Range(1),
    "gradient_steps": Range(-1),  # -1: as many gradient steps as environment steps collected (SB3)
    "action_noise_std": Range(0),
    "eval_freq": Range(1),
    "eval_episodes": Range(1),
    "eval_seed": Range(0),
    "reengage_alpha": Range(0),
    "c_low": Range(),  # the sparse reward's low value: any finite number
    "checkpoint_every": Range(0),
    "her.n_sampled_goal": Range(0),
    "algo_kwargs.reengage_tau": Range(0, 1),
    "algo_kwargs.target_update_interval": Range(1),
    "algo_kwargs.exploration_fraction": Range(0, 1),
    "algo_kwargs.exploration_initial_eps": Range(0, 1),
    "algo_kwargs.exploration_final_eps": Range(0, 1),
    "algo_kwargs.policy_delay": Range(1),
    "algo_kwargs.target_policy_noise": Range(0),
    "algo_kwargs.target_noise_clip": Range(0),
    "policy_kwargs.embed_dim": Range(1),
}

# dotted key -> valid values
CHOICES: dict[str, tuple[Any, ...]] = {
    "reengage_mode": ("sparse", "dense"),
    "her.goal_selection_strategy": ("future", "final", "episode"),
}

# keys holding lists of layer sizes: every entry must be a positive integer
LAYER_LISTS = ("net_arch", "policy_kwargs.encoder_arch")


def _lookup(config: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def check_ranges(config: dict[str, Any]) -> None:
    """Every numeric key in its range, every choice key among its choices, every layer size positive."""
    for key, valid in RANGES.items():
        present, value = _lookup(config, key)
        if not present or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}={value!r} is not a number; {key} must be a number {valid.describe()}")
        if not math.isfinite(value):
            raise ValueError(f"{key}={value!r} is not a finite number; {key} must be {valid.describe()}")
        if not valid.contains(value):
            raise ValueError(f"{key}={value!r} is out of range; {key} must be {valid.describe()}")
    for key, choices in CHOICES.items():
        present, value = _lookup(config, key)
        if present and value not in choices:
            raise ValueError(f"{key}={value!r} is not valid; valid choices: {', '.join(map(str, choices))}")
    for key in LAYER_LISTS:
        present, value = _lookup(config, key)
        if not present or value is None:
            continue
        if not isinstance(value, list) or not all(
            isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in value
        ):
            raise ValueError(f"{key}={value!r} is not valid; {key} must be a list of positive integers, e.g. [256, 256]")


# -- nested keys against signatures -------------------------------------------------------------------

# constructor arguments that the code fills in itself: never accepted from a config mapping
_FILLED_IN = {
    "self", "env", "policy", "observation_space", "action_space", "lr_schedule", "buffer_size", "device",
    "n_envs", "seed",
}


def accepted_arguments(cls: type) -> set[str] | None:
    """Keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the MRO; ``None`` = anything."""
    names: set[str] = set()
    for klass in cls.__mro__:
        function = klass.__dict__.get("__init__")
        if function is None or klass is object:
            continue
        parameters = inspect.signature(function).parameters.values()
        names |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            return names - _FILLED_IN
    # every class forwards **kwargs to one that takes anything: the signatures do not say what is valid
    return None


def check_mapping_keys(key: str, mapping: dict[str, Any] | None, target: Any, target_name: str) -> None:
    """Refuse keys of ``mapping`` that ``target`` does not take, listing those it does."""
    if not mapping:
        return
    accepted = accepted_arguments(target)
    if accepted is None:
        return
    unknown = sorted(set(mapping) - accepted)
    if unknown:
        bad = unknown[0]
        raise ValueError(
            f"{key}.{bad} is not an argument of {target_name}; valid keys for {key}: {', '.join(sorted(accepted))}"
        )


def check_nested_keys(config: dict[str, Any]) -> None:
    """``her``, ``replay_buffer_kwargs``, ``policy_kwargs``, ``algo_kwargs``, ``env_kwargs`` and
    ``observation_noise`` against what each reaches."""
    from stable_baselines3 import HerReplayBuffer

    from .registry import algo_spec, import_object

    spec = algo_spec(config["algo"])
    # the class the config's trainer builds (the fast Multi-ReenGAGE agent takes options of its own)
    agent = import_object(spec.fast_agent if config.get("trainer", "fast") == "fast" and spec.fast_agent else spec.agent)
    check_mapping_keys("algo_kwargs", config.get("algo_kwargs"), agent, agent.__name__)  # type: ignore[arg-type]

    policy_name = config.get("policy", "MultiInputPolicy")
    if ":" in policy_name:
        policy = import_object(policy_name)
    else:
        aliases = getattr(agent, "policy_aliases", {})
        if policy_name not in aliases:
            raise ValueError(f"policy={policy_name!r} is not valid; valid choices: {', '.join(sorted(aliases))} "
                             "or 'module:Class'")
        policy = aliases[policy_name]
    check_mapping_keys("policy_kwargs", config.get("policy_kwargs"), policy, policy.__name__)  # type: ignore[union-attr]

    if config.get("her") is not None:
        check_mapping_keys("her", config["her"], HerReplayBuffer, "HerReplayBuffer")
        check_mapping_keys("replay_buffer_kwargs", config.get("replay_buffer_kwargs"), HerReplayBuffer,
                           "HerReplayBuffer")
    elif config.get("replay_buffer_class"):
        buffer = import_object(config["replay_buffer_class"])
        check_mapping_keys("replay_buffer_kwargs", config.get("replay_buffer_kwargs"), buffer,
                           buffer.__name__)  # type: ignore[union-attr]

    env_class = _env_class(config["env_id"])
    if env_class is not None:
        check_mapping_keys("env_kwargs", config.get("env_kwargs"), env_class, env_class.__name__)

    if config.get("observation_noise") is not None:
        _check_observation_noise(config["observation_noise"])


def _env_class(env_id: str) -> type | None:
    import gymnasium as gym

    import reengage.envs  # noqa: F401  (registers the ids)
    from .registry import import_object

    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:
        return None
    if isinstance(entry, str):
        entry = import_object(entry)
    return entry if isinstance(entry, type) else None


def _check_observation_noise(noise: dict[str, Any]) -> None:
    import dataclasses

    from reengage.robustness.noise import SmoothingConfig

    fields = [field.name for field in dataclasses.fields(SmoothingConfig)]
    unknown = sorted(set(noise) - set(fields))
    if unknown:
        raise ValueError(f"observation_noise.{unknown[0]} is not a setting of the smoothing noise; valid keys: "
                         f"{', '.join(fields)}")
    try:
        SmoothingConfig.from_dict(dict(noise))
    except (TypeError, ValueError) as error:
        raise ValueError(f"observation_noise={noise!r}: {error}") from None
