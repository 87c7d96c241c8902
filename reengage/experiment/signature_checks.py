"""Keys of a configuration's mappings checked against the code they reach: ``algo_kwargs`` against the agent
class's constructor, ``policy_kwargs`` against the policy's, ``her`` and ``replay_buffer_kwargs`` against the
replay buffer's, ``env_kwargs`` against the environment's, ``policy`` against the agent's policy names and
``observation_noise`` against :class:`reengage.observation_noise.SmoothingConfig`.

Everything that a table can say (types, ranges, choices, algorithms, the trainer) is in
:mod:`reengage.experiment.config_keys`; what is here needs the classes themselves. Each check raises
:class:`ValueError` with one line naming the key and listing the valid ones; ``train.py`` turns that into exit
code 2.
"""

from __future__ import annotations

import inspect
from typing import Any

from reengage.algorithms import algo_spec, import_object

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

    spec = algo_spec(config["algo"])
    # the class the config's trainer builds (the fused Multi-ReenGAGE agent takes options of its own)
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
    _check_policy_classes(config.get("policy_kwargs") or {})

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


# policy options whose value is a class, and the class it must derive from
_CLASS_OPTIONS = {"activation_fn": "torch.nn:Module", "optimizer_class": "torch.optim:Optimizer",
                  "features_extractor_class": "torch.nn:Module"}


def _check_policy_classes(policy_kwargs: dict[str, Any]) -> None:
    """Class-valued policy options are classes of the right kind, and ``optimizer_kwargs`` are arguments of
    the optimizer: what reaches the constructors is checked before anything is built or written."""
    for key, base_path in _CLASS_OPTIONS.items():
        if key not in policy_kwargs:
            continue
        value, base = policy_kwargs[key], import_object(base_path)
        if not (isinstance(value, type) and issubclass(value, base)):  # type: ignore[arg-type]
            raise ValueError(
                f"policy_kwargs.{key}={value!r} is not valid; it takes a {base_path.replace(':', '.')} class, which "
                f"a YAML value or --set cannot name: set it from Python (model code), or leave it out for the default"
            )
    optimizer_kwargs = policy_kwargs.get("optimizer_kwargs")
    if optimizer_kwargs is not None:
        if not isinstance(optimizer_kwargs, dict):
            raise ValueError(f"policy_kwargs.optimizer_kwargs={optimizer_kwargs!r} is not valid; give a mapping, "
                             "e.g. {eps: 1.0e-5}")
        optimizer = policy_kwargs.get("optimizer_class") or import_object("torch.optim:Adam")
        check_mapping_keys("policy_kwargs.optimizer_kwargs", optimizer_kwargs, optimizer, optimizer.__name__)
        _check_optimizer_values(optimizer, optimizer_kwargs)


def _check_optimizer_values(optimizer: Any, optimizer_kwargs: dict[str, Any]) -> None:
    """Build the optimizer once on a throwaway parameter: torch's own checks of the values, before the run."""
    import torch

    try:
        optimizer([torch.zeros(1, requires_grad=True)], lr=1e-3, **optimizer_kwargs)
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(f"policy_kwargs.optimizer_kwargs={optimizer_kwargs!r} is refused by "
                         f"{optimizer.__name__}: {error}") from None


def _env_class(env_id: str) -> type | None:
    import gymnasium as gym

    import reengage.envs  # noqa: F401  (registers the ids)

    try:
        entry = gym.spec(env_id).entry_point
    except gym.error.Error:
        return None
    if isinstance(entry, str):
        entry = import_object(entry)
    return entry if isinstance(entry, type) else None


def _check_observation_noise(noise: dict[str, Any]) -> None:
    import dataclasses

    from reengage.observation_noise import SmoothingConfig

    fields = [field.name for field in dataclasses.fields(SmoothingConfig)]
    unknown = sorted(set(noise) - set(fields))
    if unknown:
        raise ValueError(f"observation_noise.{unknown[0]} is not a setting of the smoothing noise; valid keys: "
                         f"{', '.join(fields)}")
    try:
        SmoothingConfig.from_dict(dict(noise))
    except (TypeError, ValueError) as error:
        raise ValueError(f"observation_noise={noise!r}: {error}") from None
