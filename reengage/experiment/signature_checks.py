"""Keys of a configuration's mappings checked against the code they reach: ``algo_kwargs`` against the agent
class's constructor, ``policy_kwargs`` against the policy's, ``her`` and ``replay_buffer_kwargs`` against the
replay buffer's, ``env_kwargs`` against the environment's, ``policy`` against the agent's policy names and
``observation_noise`` against :class:`reengage.observation_noise.SmoothingConfig`.

The values of those mappings are checked against the same constructors' type annotations (stable-baselines3
annotates every argument: ``learning_rate: float | Schedule``, ``net_arch: list[int] | dict[str, list[int]]``,
``copy_info_dict: bool``, ...): a value of the wrong type is refused here, naming the key and the type the
constructor takes, rather than failing inside the constructor after the run folder was made. A key with a row
in the table of :mod:`reengage.experiment.config_keys` is checked by that row instead.

Everything that a table can say (types, ranges, choices, algorithms, the trainer) is in
:mod:`reengage.experiment.config_keys`; what is here needs the classes themselves. Each check raises
:class:`ValueError` with one line naming the key and listing the valid ones; ``train.py`` turns that into exit
code 2.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import types
import typing
from typing import Any

from reengage.algorithms import algo_spec, import_object

# constructor arguments that the code fills in itself: never accepted from a config mapping
_FILLED_IN = {
    "self",
    "env",
    "policy",
    "observation_space",
    "action_space",
    "lr_schedule",
    "buffer_size",
    "device",
    "n_envs",
    "seed",
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


def check_mapping(key: str, mapping: dict[str, Any] | None, target: Any, target_name: str) -> None:
    """:func:`check_mapping_keys`, then each value against the type annotation of its argument."""
    check_mapping_keys(key, mapping, target, target_name)
    check_mapping_types(key, mapping, target, target_name)


def check_nested_keys(config: dict[str, Any]) -> None:
    """``her``, ``replay_buffer_kwargs``, ``policy_kwargs``, ``algo_kwargs``, ``env_kwargs`` and
    ``observation_noise`` against what each reaches."""
    from stable_baselines3 import HerReplayBuffer

    spec = algo_spec(config["algo"])
    # the class the config's trainer builds (the fused Multi-ReenGAGE agent takes options of its own)
    agent = import_object(
        spec.fast_agent if config.get("trainer", "fast") == "fast" and spec.fast_agent else spec.agent
    )
    check_mapping("algo_kwargs", config.get("algo_kwargs"), agent, agent.__name__)  # type: ignore[arg-type]

    policy_name = config.get("policy", "MultiInputPolicy")
    if ":" in policy_name:
        policy = import_object(policy_name)
    else:
        aliases = getattr(agent, "policy_aliases", {})
        if policy_name not in aliases:
            raise ValueError(
                f"policy={policy_name!r} is not valid; valid choices: {', '.join(sorted(aliases))} or 'module:Class'"
            )
        policy = aliases[policy_name]
    check_mapping_keys("policy_kwargs", config.get("policy_kwargs"), policy, policy.__name__)  # type: ignore[union-attr]
    # the class-valued options first: their message says how a class can be given
    _check_policy_classes(config.get("policy_kwargs") or {})
    check_mapping_types("policy_kwargs", config.get("policy_kwargs"), policy, policy.__name__)  # type: ignore[union-attr]

    if config.get("her") is not None:
        check_mapping("her", config["her"], HerReplayBuffer, "HerReplayBuffer")
        check_mapping("replay_buffer_kwargs", config.get("replay_buffer_kwargs"), HerReplayBuffer, "HerReplayBuffer")
    elif config.get("replay_buffer_class"):
        buffer = import_object(config["replay_buffer_class"])
        check_mapping("replay_buffer_kwargs", config.get("replay_buffer_kwargs"), buffer, buffer.__name__)  # type: ignore[union-attr]

    env_class = _env_class(config["env_id"])
    if env_class is not None:
        check_mapping("env_kwargs", config.get("env_kwargs"), env_class, env_class.__name__)

    if config.get("observation_noise") is not None:
        _check_observation_noise(config["observation_noise"])


# policy options whose value is a class, and the class it must derive from
_CLASS_OPTIONS = {
    "activation_fn": "torch.nn:Module",
    "optimizer_class": "torch.optim:Optimizer",
    "features_extractor_class": "torch.nn:Module",
}


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
            raise ValueError(
                f"policy_kwargs.optimizer_kwargs={optimizer_kwargs!r} is not valid; give a mapping, "
                "e.g. {eps: 1.0e-5}"
            )
        optimizer = policy_kwargs.get("optimizer_class") or import_object("torch.optim:Adam")
        check_mapping_keys("policy_kwargs.optimizer_kwargs", optimizer_kwargs, optimizer, optimizer.__name__)
        _check_optimizer_values(optimizer, optimizer_kwargs)


def _check_optimizer_values(optimizer: Any, optimizer_kwargs: dict[str, Any]) -> None:
    """Build the optimizer once on a throwaway parameter: torch's own checks of the values, before the run."""
    import torch

    try:
        optimizer([torch.zeros(1, requires_grad=True)], lr=1e-3, **optimizer_kwargs)
    except (TypeError, ValueError, IndexError) as error:
        raise ValueError(
            f"policy_kwargs.optimizer_kwargs={optimizer_kwargs!r} is refused by {optimizer.__name__}: {error}"
        ) from None


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
        raise ValueError(
            f"observation_noise.{unknown[0]} is not a setting of the smoothing noise; valid keys: {', '.join(fields)}"
        )
    try:
        SmoothingConfig.from_dict(dict(noise))
    except (TypeError, ValueError) as error:
        raise ValueError(f"observation_noise={noise!r}: {error}") from None


# -- values against the constructors' type annotations ------------------------------------------------------


def argument_annotations(cls: type) -> dict[str, Any]:
    """The type annotation of each keyword argument ``cls(...)`` accepts, from the most derived class that
    declares it (following ``**kwargs`` up the MRO). Annotations that cannot be resolved (names imported for
    type checkers only) are left out: their arguments are not checked."""
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        function = klass.__dict__.get("__init__")
        if function is None or klass is object:
            continue
        parameters = inspect.signature(function).parameters.values()
        hints = _resolved_hints(function)
        for parameter in parameters:
            if (
                parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
                and parameter.name in hints
                and parameter.name not in found
            ):
                found[parameter.name] = hints[parameter.name]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return found


def _resolved_hints(function: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001  (one unresolvable name fails the whole call: resolve them one by one)
        hints = {}
        for name, annotation in getattr(function, "__annotations__", {}).items():
            if isinstance(annotation, str):
                try:
                    annotation = eval(annotation, getattr(function, "__globals__", {}))  # noqa: S307
                except Exception:  # noqa: BLE001
                    continue
            hints[name] = annotation
        return hints


def check_mapping_types(key: str, mapping: dict[str, Any] | None, target: Any, target_name: str) -> None:
    """Refuse a value of ``mapping`` whose type the argument's annotation in ``target`` excludes, naming the
    key, the value and the type the argument takes. Keys with a row in the table are that row's to check."""
    from .config_keys import KEYS

    if not mapping or not isinstance(target, type):
        return
    annotations = argument_annotations(target)
    for name, value in mapping.items():
        if f"{key}.{name}" in KEYS or name not in annotations:
            continue
        annotation = annotations[name]
        if not value_matches(value, annotation):
            hint = ""
            if isinstance(value, str) and _admits_float(annotation):
                try:
                    float(value)
                    hint = f" (YAML reads {value} as text: write it with a decimal point, e.g. 1.0e-3)"
                except ValueError:
                    pass
            raise ValueError(
                f"{key}.{name}={value!r} has the wrong type; {target_name}'s {name} takes "
                f"{describe_type(annotation)}{hint}"
            )


def _union_arms(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return None


def _admits_float(annotation: Any) -> bool:
    arms = _union_arms(annotation)
    return any(_admits_float(arm) for arm in arms) if arms is not None else annotation is float


def value_matches(value: Any, annotation: Any) -> bool:
    """Whether ``value`` (as YAML gives it) is of the type ``annotation`` says; constructs this does not know
    (type variables, protocols, ``Any``) accept anything."""
    if annotation is Any or isinstance(annotation, (typing.TypeVar, str)):
        return True
    arms = _union_arms(annotation)
    if arms is not None:
        return any(value_matches(value, arm) for arm in arms)
    if annotation is None or annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        return callable(value)
    if origin is type:
        base = arguments[0] if arguments else object
        return isinstance(value, type) and (not isinstance(base, type) or issubclass(value, base))
    if origin in (list, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)) or (origin is list and not isinstance(value, list)):
            return False
        return not arguments or all(value_matches(item, arguments[0]) for item in value)
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            return False
        if len(arguments) == 2:
            return all(value_matches(k, arguments[0]) and value_matches(v, arguments[1]) for k, v in value.items())
        return True
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return all(value_matches(item, arguments[0]) for item in value)
        return len(value) == len(arguments) and all(map(value_matches, value, arguments))
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}


def describe_type(annotation: Any) -> str:
    """``annotation`` in words, as a message to a user who writes YAML."""
    arms = _union_arms(annotation)
    if arms is not None:
        words = [describe_type(arm) for arm in arms]
        return " or ".join(dict.fromkeys(words))
    if annotation is None or annotation is type(None):
        return "null"
    simple = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if annotation in simple:
        return simple[annotation]
    origin, arguments = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is collections.abc.Callable or annotation is collections.abc.Callable:
        return "a function (set from Python)"
    if origin is type:
        base = arguments[0] if arguments else object
        return f"a {getattr(base, '__module__', '')}.{getattr(base, '__name__', base)} class (set from Python)"
    if origin in (list, collections.abc.Sequence):
        inner = _PLURALS.get(arguments[0], "values") if arguments else "values"
        return f"a list of {inner}, e.g. [64, 64]" if arguments and arguments[0] is int else f"a list of {inner}"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping {key: value}"
    if origin is tuple:
        return "a tuple (set from Python)"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return f"one of {', '.join(str(member.value) for member in annotation)}"
    if isinstance(annotation, type):
        article = "an" if annotation.__name__[:1].lower() in "aeiou" else "a"
        return f"{article} {annotation.__name__} (set from Python)"
    return str(annotation)
