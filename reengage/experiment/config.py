"""Training configurations: one YAML file per environment family in ``configs/``.

A file looks like::

    env_ids:                       # the gymnasium ids this file serves, with their gym.make kwargs
      reengage/ContinuousSeek5-v0: {}
    common: {gamma: 0.95, ...}     # every algorithm
    algos:                         # per algorithm (only the algorithms listed here may run on these ids)
      ddpg:
        reengage: {...}            # this algorithm's runs with alpha > 0 only (the toolkit's ReenGAGE settings)
      sac: {learning_rate: 1.0e-3}
    tuned:                         # per id and algorithm: 'baseline' applies at alpha 0, 'reengage' at alpha > 0,
      reengage/ContinuousSeek5-v0: # and 'alpha_0.1' (any alpha value) at that alpha only
        ddpg: {baseline: {batch_size: 512}, reengage: {batch_size: 512, learning_rate: 1.5e-3}}

Resolution order, later wins: built-in defaults, ``common``, ``algos[algo]``, ``algos[algo].reengage`` (alpha > 0
only), ``tuned[id][algo][...]``,
the command line's ``--alpha``/``--timesteps``, then each ``--set key=value``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .extensions import check_extension_values

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

_NUMBER = (int, float)
_MISSING = object()

# key -> (accepted types, default, meaning). None in the types tuple means the key may be null.
SCHEMA: dict[str, tuple[tuple, Any, str]] = {
    "env_kwargs": ((dict,), {}, "keyword arguments for gym.make"),
    "timesteps": ((int,), 5000, "environment steps to train"),
    "buffer_size": ((int,), 1_000_000, "replay buffer capacity"),
    "learning_starts": ((int,), 1000, "random-action steps before training"),
    "batch_size": ((int,), 256, "minibatch size"),
    "learning_rate": (_NUMBER, 1e-3, "Adam learning rate"),
    "gamma": (_NUMBER, 0.95, "discount"),
    "tau": (_NUMBER, 0.005, "Polyak coefficient of target networks"),
    "train_freq": ((int,), 1, "environment steps between trainings"),
    "gradient_steps": ((int,), 1, "gradient steps per training"),
    "action_noise_std": ((*_NUMBER, type(None)), 0.1, "std of Gaussian exploration noise (continuous actions)"),
    "net_arch": ((list,), [256, 256], "hidden layer sizes"),
    "her": ((dict, type(None)), None, "HerReplayBuffer kwargs, or null for no HER"),
    "eval_freq": ((int,), 2000, "environment steps between evaluations"),
    "eval_episodes": ((int,), 50, "episodes per evaluation"),
    "eval_seed": ((int,), 1_000_000, "seed of the first evaluation episode"),
    "reengage_alpha": (_NUMBER, 0.2, "weight of the goal-gradient term (0 = baseline)"),
    "reengage_mode": ((str,), "sparse", "sparse (Eq. 8.9) or dense (Eq. 8.8)"),
    "c_low": (_NUMBER, -1.0, "low value of the sparse reward"),
    "reengage_diagnostics": ((int,), 0, "log goal-gradient diagnostics every N gradient steps (0: off)"),
    "policy": ((str,), "MultiInputPolicy", "SB3 policy name or 'module:Class'"),
    "policy_kwargs": ((dict,), {}, "extra policy kwargs"),
    "replay_buffer_class": ((str, type(None)), None, "'module:Class' of a replay buffer (with her: null)"),
    "replay_buffer_kwargs": ((dict,), {}, "extra replay buffer kwargs"),
    "algo_kwargs": ((dict,), {}, "extra keyword arguments for the agent's constructor"),
    "checkpoint_every": ((int,), 0, "environment steps between checkpoints (0: none)"),
    "observation_noise": ((dict, type(None)), None, "train under smoothing noise: {sigma, keys} (robustness)"),
    # robotics issue (reengage/experiment/extensions.py)
    "n_envs": ((int,), 1, "parallel training environments (SubprocVecEnv when > 1)"),
    "obs_normalization": ((dict, type(None)), None,
                          "running obs/goal normaliser in the policy: {clip_obs, clip_normalized, std_floor} or null"),
    "target_value_clip": ((bool,), False, "clip the target critic's value to [c_low/(1-gamma), 0] (ddpg, td3)"),
    "action_l2": (_NUMBER, 0.0, "weight of the actor's action L2 penalty (ddpg, td3)"),
    "random_action_prob": (_NUMBER, 0.0, "probability of a uniform random action after learning_starts (ddpg, td3)"),
    "trainer": ((str,), "fast", "fast (lean update, the default) or sb3 (stock stable-baselines3 train())"),
}

TRAINERS = ("fast", "sb3")

FILE_SECTIONS = ("env_ids", "common", "algos", "tuned")
# inside ``algos[algo]``: the settings of that algorithm's runs with alpha > 0 (DDPG+HER runs keep their identity)
REENGAGE_SUBSECTION = "reengage"


@dataclass
class ConfigFile:
    path: Path
    env_ids: dict[str, dict]
    common: dict
    algos: dict[str, dict]
    tuned: dict[str, dict]
    # per algorithm, the ``algos[algo].reengage`` subsection (alpha > 0 only); empty where there is none
    reengage: dict[str, dict] = field(default_factory=dict)


class ConfigFileError(ValueError):
    """A file of ``configs/`` that cannot be read; only the environments it serves are affected."""

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(message)
        self.path = Path(path)


def _read_yaml(path: Path) -> dict:
    """The file's mapping; a syntax error becomes one line with the file, line and column."""
    try:
        with open(path) as handle:
            raw = yaml.safe_load(handle) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigFileError(path, f"{where}: YAML syntax error: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigFileError(path, f"{path}: expected a mapping with sections {FILE_SECTIONS}, got {type(raw).__name__}")
    return raw


def load_config_file(path: Path) -> ConfigFile:
    raw = _read_yaml(path)
    unknown = set(raw) - set(FILE_SECTIONS)
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}; valid sections: {FILE_SECTIONS}")
    env_ids = {key: dict(value or {}) for key, value in (raw.get("env_ids") or {}).items()}
    algos, reengage = {}, {}
    for algo, section in (raw.get("algos") or {}).items():
        section = dict(section or {})
        reengage[algo] = section.pop(REENGAGE_SUBSECTION, None) or {}
        algos[algo] = section
    config = ConfigFile(path, env_ids, raw.get("common") or {}, algos, raw.get("tuned") or {}, reengage)
    validate(config.common, where=str(path))
    for algo in algos:
        validate(algos[algo], where=f"{path}: algos.{algo}")
        validate(reengage[algo], where=f"{path}: algos.{algo}.{REENGAGE_SUBSECTION}")
    for env_id, per_algo in config.tuned.items():
        for algo, profiles in per_algo.items():
            for profile, values in profiles.items():
                if profile not in ("baseline", "reengage") and not _is_alpha_profile(profile):
                    raise ValueError(
                        f"{path}: tuned.{env_id}.{algo}.{profile}: valid profiles: baseline, reengage, alpha_<value>"
                    )
                validate(values, where=f"{path}: tuned.{env_id}.{algo}.{profile}")
    return config


def _is_alpha_profile(name: str) -> bool:
    try:
        return name.startswith("alpha_") and float(name[len("alpha_"):]) > 0
    except ValueError:
        return False


def _tuned_profile(profiles: dict[str, dict], alpha: float) -> dict:
    if alpha == 0:
        return profiles.get("baseline", {})
    for name, values in profiles.items():
        if _is_alpha_profile(name) and float(name[len("alpha_"):]) == alpha:
            return values
    return profiles.get("reengage", {})


def scan_config_files(config_dir: Path = CONFIG_DIR) -> tuple[list[ConfigFile], list[ConfigFileError]]:
    """The readable files and the problems of the others: one broken file disables only its family."""
    good, broken = [], []
    for path in sorted(Path(config_dir).glob("*.yaml")):
        try:
            good.append(load_config_file(path))
        except ConfigFileError as error:
            broken.append(error)
        except ValueError as error:
            broken.append(ConfigFileError(path, str(error)))
    return good, broken


def all_config_files(config_dir: Path = CONFIG_DIR) -> list[ConfigFile]:
    return scan_config_files(config_dir)[0]


def find_config_file(env_id: str, config_dir: Path = CONFIG_DIR) -> ConfigFile:
    files, broken = scan_config_files(config_dir)
    for config in files:
        if env_id in config.env_ids:
            return config
    for problem in broken:
        # the id is named in the text of a file that does not parse: that file's problem is the answer
        if env_id in problem.path.read_text(errors="replace"):
            raise ValueError(f"env {env_id!r} is configured in a file that cannot be read: {problem}")
    known = sorted(env for config in files for env in config.env_ids)
    note = "".join(f" (unreadable: {problem})" for problem in broken)
    raise ValueError(f"unknown env {env_id!r}; valid envs: {', '.join(known)}{note}")


def _coerce(key: str, value: Any, where: str) -> Any:
    types, _, _ = SCHEMA[key]
    # YAML 1.1 reads '1e-3' as a string; numbers written that way are still numbers
    if isinstance(value, str) and float in types:
        try:
            value = float(value)
        except ValueError:
            pass
    if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
        names = ", ".join("null" if t is type(None) else t.__name__ for t in types)
        raise ValueError(f"{where}: {key}={value!r} has the wrong type; expected {names}")
    return value


def validate(values: dict, where: str = "config") -> dict:
    """Check keys against :data:`SCHEMA` and coerce numbers; returns a new dict."""
    out = {}
    for key, value in values.items():
        if key not in SCHEMA:
            raise ValueError(f"{where}: unknown config key {key!r}; valid keys: {', '.join(sorted(SCHEMA))}")
        out[key] = _coerce(key, value, where)
    return out


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``'her.n_sampled_goal=8'`` -> ``(['her', 'n_sampled_goal'], 8)``; the value is read as YAML."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    key, _, raw_value = text.partition("=")
    path = key.strip().split(".")
    if path[0] not in SCHEMA:
        raise ValueError(f"unknown config key {path[0]!r} in --set {text!r}; valid keys: {', '.join(sorted(SCHEMA))}")
    return path, yaml.safe_load(raw_value)


def apply_assignment(config: dict, path: list[str], value: Any) -> None:
    if len(path) == 1:
        config[path[0]] = _coerce(path[0], value, "--set")
        return
    node = config.setdefault(path[0], {})
    if node is None:
        node = config[path[0]] = {}
    if not isinstance(node, dict):
        raise ValueError(f"--set {'.'.join(path)}: {path[0]} is not a mapping")
    for depth, part in enumerate(path[1:-1], start=1):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"--set {'.'.join(path)}: {'.'.join(path[:depth + 1])} is not a mapping")
    node[path[-1]] = value


def resolve_config(
    env_id: str,
    algo: str,
    alpha: float | None = None,
    timesteps: int | None = None,
    assignments: list[str] | None = None,
    config_dir: Path = CONFIG_DIR,
) -> dict[str, Any]:
    """The full configuration of one run, every key of :data:`SCHEMA` present."""
    source = find_config_file(env_id, config_dir)
    if algo not in source.algos:
        raise ValueError(
            f"algo {algo!r} is not configured for {env_id} in {source.path.name}; valid algos: "
            f"{', '.join(sorted(source.algos))}"
        )
    config = {key: copy.deepcopy(default) for key, (_, default, _) in SCHEMA.items()}
    config.update(copy.deepcopy(source.common))
    config.update(copy.deepcopy(source.algos[algo]))
    config["env_kwargs"] = {**config["env_kwargs"], **source.env_ids[env_id]}

    parsed = [parse_assignment(text) for text in assignments or []]
    if alpha is None:
        # an alpha given through --set also chooses the tuned profile
        alpha_sets = [value for path, value in parsed if path == ["reengage_alpha"]]
        alpha = float(alpha_sets[-1]) if alpha_sets else float(config["reengage_alpha"])
    if float(alpha) > 0:
        config.update(copy.deepcopy(source.reengage.get(algo, {})))
    config.update(copy.deepcopy(_tuned_profile(source.tuned.get(env_id, {}).get(algo, {}), float(alpha))))
    config["reengage_alpha"] = float(alpha)
    if timesteps is not None:
        config["timesteps"] = int(timesteps)
    for path, value in parsed:
        apply_assignment(config, path, value)
    config = validate(config, where=f"{env_id}/{algo}")
    _check_values(config)
    check_extension_values(config, algo)
    config["env_id"] = env_id
    config["algo"] = algo
    config["config_file"] = source.path.name
    check_config_values(config)
    _check_fast_trainer_options(config)
    return config


def check_config_values(config: dict[str, Any]) -> None:
    """Ranges, choices and nested keys (see :mod:`reengage.experiment.validation`); raises ValueError."""
    from .validation import check_nested_keys, check_ranges

    check_ranges(config)
    check_nested_keys(config)


def _check_values(config: dict) -> None:
    positive = ["timesteps", "buffer_size", "batch_size", "train_freq", "eval_freq", "eval_episodes"]
    for key in positive:
        if config[key] <= 0:
            raise ValueError(f"{key} must be positive, got {config[key]!r}")
    if not 0 < config["gamma"] <= 1:
        raise ValueError(f"gamma must be in (0, 1], got {config['gamma']!r}")
    if config["reengage_alpha"] < 0:
        raise ValueError(f"reengage_alpha must be >= 0, got {config['reengage_alpha']!r}")
    if config["trainer"] not in TRAINERS:
        raise ValueError(f"trainer must be one of {', '.join(TRAINERS)}, got {config['trainer']!r}")
    if config["checkpoint_every"] < 0:
        raise ValueError(f"checkpoint_every must be >= 0 (0 disables), got {config['checkpoint_every']!r}")


# options of the robotics recipe whose interaction with the fast update is not verified yet: the fast
# path refuses them rather than train something that could silently differ from the SB3 path
_SB3_ONLY_OPTIONS = {
    "obs_normalization": lambda value: value is not None,
    "target_value_clip": bool,
    "action_l2": lambda value: value > 0,
    "random_action_prob": lambda value: value > 0,
}


def _check_fast_trainer_options(config: dict) -> None:
    from reengage.algorithms import algo_spec

    if config["trainer"] != "fast" or algo_spec(config["algo"]).fast_agent is None:
        return
    used = [key for key, active in _SB3_ONLY_OPTIONS.items() if key in config and active(config[key])]
    if used:
        raise ValueError(
            f"{', '.join(used)} {'is' if len(used) == 1 else 'are'} supported on the SB3 training path only; "
            "add --trainer sb3 (or --set trainer=sb3)"
        )
