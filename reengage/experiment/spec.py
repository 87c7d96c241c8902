"""Experiment files: environments x variants x hyperparameter grid x seeds, expanded into runs.

An experiment file (``configs/experiments/*.yaml``) looks like::

    name: fig8_2_reduced                  # folder name under results/ (default: the file's stem)
    description: DDPG+HER against ReenGAGE on ContinuousSeek
    environments: [reengage/ContinuousSeek5-v0, reengage/ContinuousSeek10-v0]
    seeds: 5                              # a count (seeds 0..4) or a list of seeds
    timesteps: 40000                      # step budget of every run (default: the env's config)
    overrides: {batch_size: 256}          # config keys set for every run (python train.py --list-keys)
    grid: {learning_rate: [5.0e-4, 1.0e-3]}   # every combination is one setting of every variant
    variants:
      - {name: DDPG+HER, algo: ddpg, alpha: 0}
      - {name: ReenGAGE, algo: ddpg, alpha: 0.2, overrides: {...}, grid: {...}, seeds: 3,
         environments: [...], timesteps: ...}       # the last five replace the file's values
    report: {baseline: DDPG+HER, success_threshold: 0.5, metric: eval/success_ever}
    tune: {trials: 20, search_space: {...}, ...}   # python -m reengage.experiment tune FILE (tune_spec.py)

Each run's configuration is resolved exactly as ``train.py`` resolves it
(:func:`reengage.experiment.config.resolve_config`): the environment's YAML file and tuned profile,
then ``alpha`` and ``timesteps``, then the file's ``overrides``, the variant's, and the grid point's.
A run's identity is (environment, variant, grid point, seed) plus a hash of that resolved
configuration, so a changed setting gives a new run folder rather than reusing an old one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config import resolve_config
from .config_keys import KEYS
from .evaluation import EVALUATION_COLUMNS, LEGACY_SUCCESS, SUCCESS_EVER

EXPERIMENT_KEYS = (
    "name",
    "description",
    "environments",
    "seeds",
    "timesteps",
    "overrides",
    "grid",
    "variants",
    "report",
    "tune",
)
VARIANT_KEYS = ("name", "algo", "alpha", "overrides", "grid", "seeds", "environments", "timesteps")
REPORT_KEYS = ("baseline", "success_threshold", "metric", "task_keys")
# grid or override keys that choose the variant's alpha (and with it the tuned profile) rather than a config key
_ALPHA_KEYS = ("alpha", "reengage_alpha")
HASH_LENGTH = 10


class ExperimentError(ValueError):
    """A malformed experiment file; the message names the bad value and the valid choices."""


@dataclass(frozen=True)
class RunSpec:
    """One training run of an experiment: everything needed to execute it and to find it again."""

    env_id: str
    variant: str
    algo: str
    alpha: float
    point: dict[str, Any]  # the grid point (empty without a grid)
    seed: int
    config: dict[str, Any]  # resolved, as train.py would train it
    config_hash: str

    @property
    def point_label(self) -> str:
        return point_label(self.point)

    @property
    def run_id(self) -> str:
        """Relative folder of the run: readable names, then the seed and the configuration's hash."""
        parts = [_slug(self.env_id.split("/")[-1]), _slug(self.variant)]
        if self.point:
            parts.append(_slug(self.point_label))
        parts.append(f"s{self.seed}_{self.config_hash}")
        return "/".join(parts)

    def identity(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "env_id": self.env_id,
            "variant": self.variant,
            "algo": self.algo,
            "alpha": self.alpha,
            "point": self.point,
            "seed": self.seed,
            "config_hash": self.config_hash,
        }


@dataclass
class Experiment:
    name: str
    path: Path | None
    description: str
    runs: list[RunSpec]
    baseline: str | None
    success_threshold: float
    metric: str | None
    variants: list[str] = field(default_factory=list)
    task_keys: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    tune: Any = None  # the checked tune section (reengage.experiment.tune_spec.TuneSpec), None without one


def point_label(point: dict[str, Any]) -> str:
    return ",".join(f"{key}={_format_value(value)}" for key, value in sorted(point.items())) or "default"


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else json.dumps(value) if not isinstance(value, str) else value


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.=,_+-]+", "-", text).strip("-")


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable digest of a resolved configuration (key order does not matter)."""
    canonical = json.dumps(config, sort_keys=True, default=repr, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:HASH_LENGTH]


def _check_keys(mapping: Any, valid: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(mapping, dict):
        raise ExperimentError(f"{where}: expected a mapping with keys {', '.join(valid)}, got {mapping!r}")
    unknown = [key for key in mapping if key not in valid]
    if unknown:
        raise ExperimentError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(valid)}")
    return mapping


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise ExperimentError(f"{where}: seeds={value} must be a positive count or a list of integers")
        return list(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if len(set(value)) != len(value):
            raise ExperimentError(f"{where}: seeds {value} repeat a seed")
        return list(value)
    raise ExperimentError(f"{where}: seeds={value!r} must be a positive count or a non-empty list of integers")


def _environments(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(env, str) for env in value):
        raise ExperimentError(f"{where}: environments={value!r} must be a non-empty list of env ids")
    return value


def _grid(value: Any, where: str) -> dict[str, list[Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ExperimentError(f"{where}: grid={value!r} must map config keys to lists of values")
    for key, values in value.items():
        if not isinstance(values, list) or not values:
            raise ExperimentError(f"{where}: grid.{key}={values!r} must be a non-empty list of values")
    return dict(value)


def _alpha(value: Any, where: str) -> float:
    """A variant's (or grid point's) alpha, checked as the configuration key ``reengage_alpha`` it becomes."""
    key = KEYS["reengage_alpha"]
    value = key.coerce(value)
    problem = key.type_problem(value) or key.value_problem(value)
    if problem:
        raise ExperimentError(f"{where}: alpha={value!r}: {problem} (0 = the baseline without the term)")
    return float(value)


def _assignment(key: str, value: Any) -> str:
    # JSON is valid YAML, which is how resolve_config reads the right-hand side of key=value
    return f"{key}={json.dumps(value)}"


def load_experiment(path: str | Path) -> Experiment:
    """Read and expand an experiment file; every run's configuration is resolved (and checked) here."""
    path = Path(path)
    if not path.is_file():
        raise ExperimentError(f"experiment file {str(path)!r} not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ExperimentError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    return expand_experiment(raw, name_default=path.stem, path=path)


def expand_experiment(raw: Any, name_default: str = "experiment", path: Path | None = None) -> Experiment:
    where = str(path) if path else "experiment"
    raw = _check_keys(raw if raw is not None else {}, EXPERIMENT_KEYS, where)
    if not raw.get("variants"):
        raise ExperimentError(f"{where}: 'variants' must be a non-empty list of {{name, algo, alpha, ...}}")
    if not isinstance(raw["variants"], list):
        raise ExperimentError(f"{where}: 'variants' must be a list, got {raw['variants']!r}")
    name = str(raw.get("name", name_default))
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise ExperimentError(f"{where}: name={name!r} may use only letters, digits and . _ + -")
    environments = _environments(raw.get("environments"), where)
    seeds = _seeds(raw.get("seeds", 1), where)
    timesteps = raw.get("timesteps")
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise ExperimentError(f"{where}: overrides={overrides!r} must map config keys to values")
    grid = _grid(raw.get("grid"), where)
    report = _check_keys(raw.get("report") or {}, REPORT_KEYS, f"{where}: report")

    runs: list[RunSpec] = []
    names: list[str] = []
    for index, variant in enumerate(raw["variants"]):
        vwhere = f"{where}: variants[{index}]"
        variant = _check_keys(variant, VARIANT_KEYS, vwhere)
        for required in ("name", "algo"):
            if required not in variant:
                raise ExperimentError(
                    f"{vwhere}: missing {required!r} (each variant needs name and algo; alpha defaults to 0)"
                )
        vname = str(variant["name"])
        if vname in names:
            raise ExperimentError(f"{vwhere}: variant name {vname!r} is used twice; names must be unique")
        names.append(vname)
        v_overrides = variant.get("overrides") or {}
        if not isinstance(v_overrides, dict):
            raise ExperimentError(f"{vwhere}: overrides={v_overrides!r} must map config keys to values")
        v_grid = {**grid, **_grid(variant.get("grid"), vwhere)}
        v_envs = _environments(variant["environments"], vwhere) if "environments" in variant else environments
        v_seeds = _seeds(variant["seeds"], vwhere) if "seeds" in variant else seeds
        v_steps = variant.get("timesteps", timesteps)
        if v_steps is not None and (isinstance(v_steps, bool) or not isinstance(v_steps, int) or v_steps <= 0):
            raise ExperimentError(f"{vwhere}: timesteps={v_steps!r} must be a positive integer")
        keys = sorted(v_grid)
        for combo in itertools.product(*(v_grid[key] for key in keys)):
            point = dict(zip(keys, combo))
            alpha = _alpha(variant.get("alpha", 0.0), vwhere)
            for key in _ALPHA_KEYS:
                if key in point:
                    alpha = _alpha(point[key], f"{vwhere}: grid.{key}")
            assignments = [
                _assignment(key, value)
                for key, value in [*overrides.items(), *v_overrides.items(), *point.items()]
                if key not in _ALPHA_KEYS
            ]
            for env_id in v_envs:
                try:
                    config = resolve_config(env_id, str(variant["algo"]), alpha, v_steps, assignments)
                except ValueError as error:
                    raise ExperimentError(f"{vwhere} ({vname}, {env_id}): {error}") from None
                digest = config_hash(config)
                for seed in v_seeds:
                    runs.append(RunSpec(env_id, vname, str(variant["algo"]), alpha, point, seed, config, digest))
    baseline = report.get("baseline")
    if baseline is not None and baseline not in names:
        raise ExperimentError(f"{where}: report.baseline={baseline!r} is not a variant; variants: {', '.join(names)}")
    threshold = report.get("success_threshold", 0.5)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ExperimentError(f"{where}: report.success_threshold={threshold!r} must be in (0, 1]")
    task_keys = report.get("task_keys") or []
    grid_keys = set(grid) | {key for variant in raw["variants"] for key in ((variant or {}).get("grid") or {})}
    if not isinstance(task_keys, list) or any(key not in grid_keys for key in task_keys):
        raise ExperimentError(
            f"{where}: report.task_keys={task_keys!r} must be a list of grid keys; grid keys: "
            f"{', '.join(sorted(grid_keys)) or '(none)'}"
        )
    ids = [run.run_id for run in runs]
    duplicates = sorted({run_id for run_id in ids if ids.count(run_id) > 1})
    if duplicates:
        raise ExperimentError(
            f"{where}: two runs share the folder {duplicates[0]!r} (variant names that differ only in punctuation?)"
        )
    metric = report.get("metric")
    if metric == LEGACY_SUCCESS:  # the column's name before 0.2.0, in experiment files written then
        metric = SUCCESS_EVER
    if metric is not None and metric not in EVALUATION_COLUMNS:
        raise ExperimentError(
            f"{where}: report.metric={metric!r} is not a column of evaluations.csv; valid: "
            f"{', '.join(EVALUATION_COLUMNS)}"
        )
    tune = _tune_section(raw, where) if "tune" in raw else None
    return Experiment(
        name=name,
        path=path,
        description=str(raw.get("description", "")),
        runs=runs,
        baseline=baseline if baseline is not None else names[0],
        success_threshold=float(threshold),
        metric=metric,
        variants=names,
        task_keys=list(task_keys),
        raw=raw,
        tune=tune,
    )


def _tune_section(raw: dict[str, Any], where: str) -> Any:
    """The checked ``tune:`` section: its own keys, then a configuration resolved at every bound and choice of
    the search space (one key away from the first bounds), so that no trial meets a refused value."""
    from .tune_spec import TuneError, check_tunable, parse_tune, tuned_raw

    try:
        check_tunable(raw, where)
        spec = parse_tune(raw["tune"])
    except TuneError as error:
        raise ExperimentError(f"{where}: {error}") from None
    first = {key: dimension.extremes()[0] for key, dimension in spec.search_space.items()}
    for key, dimension in spec.search_space.items():
        for value in dimension.extremes():
            try:
                expand_experiment(tuned_raw(raw, spec, {**first, key: value}), path=None)
            except ExperimentError as error:
                problem = str(error).removeprefix("experiment: ")
                raise ExperimentError(f"{where}: tune.search_space.{key}={value!r}: {problem}") from None
    return spec
