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

The keys, their defaults and what is valid for each are the table of :mod:`reengage.experiment.config_keys`; a
resolved configuration is checked against it, then against the classes its mappings reach
(:mod:`reengage.experiment.signature_checks`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reengage.algorithms import ALGOS, trainable_algo_spec

from .config_keys import KEYS, check_config, defaults, top_level_keys

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"

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
        raise ConfigFileError(
            path, f"{path}: expected a mapping with sections {FILE_SECTIONS}, got {type(raw).__name__}"
        )
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
        return name.startswith("alpha_") and float(name[len("alpha_") :]) > 0
    except ValueError:
        return False


def _tuned_profile(profiles: dict[str, dict], alpha: float) -> dict:
    if alpha == 0:
        return profiles.get("baseline", {})
    for name, values in profiles.items():
        if _is_alpha_profile(name) and float(name[len("alpha_") :]) == alpha:
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


def _valid_keys() -> str:
    return ", ".join(sorted(top_level_keys()))


def _coerce(key: str, value: Any, where: str) -> Any:
    """``value`` as the top-level ``key`` takes it (see :meth:`ConfigKey.coerce`), or ValueError for its type."""
    row = KEYS[key]
    value = row.coerce(value)
    problem = row.type_problem(value)
    if problem:
        raise ValueError(f"{where}: {problem}")
    return value


def validate(values: dict, where: str = "config") -> dict:
    """Check top-level keys against :data:`~reengage.experiment.config_keys.KEYS` and coerce numbers; returns
    a new dict."""
    out = {}
    for key, value in values.items():
        if key not in KEYS or KEYS[key].dotted:
            raise ValueError(f"{where}: unknown config key {key!r}; valid keys: {_valid_keys()}")
        out[key] = _coerce(key, value, where)
    return out


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``'her.n_sampled_goal=8'`` -> ``(['her', 'n_sampled_goal'], 8)``; the value is read as YAML."""
    if "=" not in text:
        raise ValueError(f"--set expects key=value, got {text!r}")
    key, _, raw_value = text.partition("=")
    path = key.strip().split(".")
    if path[0] not in KEYS or KEYS[path[0]].dotted:
        raise ValueError(f"unknown config key {path[0]!r} in --set {text!r}; valid keys: {_valid_keys()}")
    name = ".".join(path)
    if not raw_value.strip():
        raise ValueError(f"--set {name}= has no value; write --set {name}=VALUE (null for none)")
    try:
        value = yaml.safe_load(raw_value)
    except yaml.YAMLError as error:
        # one line: what YAML could not read, and the forms it takes
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(
            f"--set {name}: cannot read {raw_value!r} as a YAML value ({problem}); write a number, a word, "
            f"[a, list] or {{key: value}}, quoted as one shell argument, e.g. --set 'policy_kwargs.net_arch=[256, 256]'"
        ) from None
    return path, value


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
            raise ValueError(f"--set {'.'.join(path)}: {'.'.join(path[: depth + 1])} is not a mapping")
    node[path[-1]] = value


def resolve_config(
    env_id: str,
    algo: str,
    alpha: float | None = None,
    timesteps: int | None = None,
    assignments: list[str] | None = None,
    config_dir: Path = CONFIG_DIR,
) -> dict[str, Any]:
    """The full configuration of one run, every top-level key of the table present, checked."""
    source = find_config_file(env_id, config_dir)
    if algo in ALGOS:
        trainable_algo_spec(algo)  # an algorithm the toolkit names but cannot train says why, before anything else
    if algo not in source.algos:
        raise ValueError(
            f"algo {algo!r} is not configured for {env_id} in {source.path.name}; valid algos: "
            f"{', '.join(sorted(source.algos))}"
        )
    config = defaults()
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
    config["env_id"] = env_id
    config["algo"] = algo
    config["config_file"] = source.path.name
    check_resolved(config)
    return config


def check_resolved(config: dict[str, Any]) -> None:
    """Every check of a configuration with its ``env_id`` and ``algo``: the table's (types of dotted keys,
    ranges, choices, algorithms, the fast trainer), then the mappings against the classes they reach."""
    from .signature_checks import check_nested_keys

    check_config(config)
    check_nested_keys(config)
