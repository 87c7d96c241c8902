"""The ``tune:`` section of an experiment file: what ``python -m reengage.experiment tune FILE`` searches.

A file with a ``tune:`` section names one environment and one variant (the configuration being tuned; its
``overrides`` and ``timesteps`` apply to every trial) and no grid::

    environments: [reengage/ContinuousSeek10-v0]
    timesteps: 20000
    variants: [{name: ReenGAGE, algo: ddpg, alpha: 0.2}]
    tune:
      trials: 20                       # the study's size: trials ended (complete, pruned, failed) + running
      seeds: [100, 101]                # each trial trains these seeds, one after another (a count N: 100..100+N-1)
      metric: auc                      # auc: mean of `column` over the evaluations; final: its last value
      column: eval/success_ever        # an evaluations.csv column
      direction: maximize
      sampler: {type: tpe, seed: 0, startup_trials: 10}      # or random
      pruner: {type: median, startup_trials: 5, warmup_steps: 0, interval_steps: 1}
                                       # or none, or {type: threshold, lower: L, upper: U}
      search_space:                    # config keys (python train.py --list-keys), dotted ones included
        reengage_alpha: {type: float, low: 0.01, high: 1.0, log: true}
        batch_size: {type: categorical, choices: [128, 256, 512]}
        algo_kwargs.reengage_matching: {type: categorical, choices: [full, one_sided]}
        learning_starts: {type: int, low: 500, high: 2000, step: 500}

A trial's settings become the variant's grid point, so each trial's runs are ordinary runs of the experiment
(``runs/<env>/<variant>/<settings>/s<seed>_<hash>/``), resolved and checked exactly as ``run`` resolves a grid.
Everything is checked when the file is read, before anything is written: the section's keys, the search space's
keys against the config key table (:mod:`reengage.experiment.config_keys`), their bounds and choices against what
each key accepts, and a configuration resolved at each bound and choice.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .config_keys import KEYS
from .evaluation import EVALUATION_COLUMNS, SUCCESS_EVER

TUNE_KEYS = ("trials", "seeds", "metric", "column", "direction", "sampler", "pruner", "search_space")
METRICS = ("auc", "final")
DIRECTIONS = ("maximize", "minimize")
SAMPLER_KEYS = ("type", "seed", "startup_trials")
SAMPLERS = ("tpe", "random")
PRUNER_KEYS = ("type", "startup_trials", "warmup_steps", "interval_steps", "lower", "upper")
PRUNERS = ("median", "threshold", "none")
# the first seed of a tuning study: away from the seeds 0, 1, ... that reporting runs use
FIRST_TUNING_SEED = 100

_FORMS = {
    "float": "{type: float, low: L, high: H, log: false, step: null} with L < H (L > 0 when log: true)",
    "int": "{type: int, low: L, high: H, log: false, step: 1} with integers L < H (L >= 1 when log: true)",
    "categorical": "{type: categorical, choices: [A, B, ...]} with at least one choice",
}
_FIELDS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}
# Optuna's categorical choices are None, bool, int, float or str; others (lists, mappings) are stored as JSON text
_PRIMITIVE = (type(None), bool, int, float, str)


class TuneError(ValueError):
    """A malformed ``tune:`` section; the message names the key and its valid form."""


@dataclass(frozen=True)
class Dimension:
    """One key of the search space and its distribution."""

    key: str
    kind: str  # float, int or categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def encoded(self) -> bool:
        """Whether the choices are stored in the study as JSON text (some are lists or mappings)."""
        return self.kind == "categorical" and not all(isinstance(choice, _PRIMITIVE) for choice in self.choices)

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "float":
            return FloatDistribution(
                float(self.low), float(self.high), log=self.log, step=None if self.step is None else float(self.step)
            )
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return CategoricalDistribution(
            [json.dumps(choice) for choice in self.choices] if self.encoded else list(self.choices)
        )

    def decode(self, value: Any) -> Any:
        """The configuration value of a sampled parameter."""
        if self.encoded:
            return json.loads(value)
        if self.kind == "int":
            return int(value)
        return value

    def extremes(self) -> list[Any]:
        """The values checked when the file is read: both bounds, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class TuneSpec:
    trials: int
    seeds: tuple[int, ...]
    metric: str
    column: str
    direction: str
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    search_space: dict[str, Dimension] = field(default_factory=dict)

    def distributions(self) -> dict[str, Any]:
        return {key: dimension.distribution() for key, dimension in self.search_space.items()}

    def settings(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's configuration values from its sampled parameters."""
        return {key: self.search_space[key].decode(value) for key, value in params.items() if key in self.search_space}

    def describe_metric(self) -> str:
        what = "mean over the evaluations" if self.metric == "auc" else "last evaluation"
        seeds = ", ".join(map(str, self.seeds))
        return f"{self.metric}: {self.column}, {what}, averaged over seed{'s' if len(self.seeds) > 1 else ''} {seeds}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mapping(value: Any, valid: tuple[str, ...], where: str, form: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TuneError(f"{where}={value!r} must be a mapping; valid form: {form}")
    unknown = [key for key in value if key not in valid]
    if unknown:
        raise TuneError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(valid)} ({form})")
    return value


def _choice(value: Any, valid: tuple[str, ...], where: str) -> str:
    if value not in valid:
        raise TuneError(f"{where}={value!r} is not valid; valid choices: {', '.join(valid)}")
    return str(value)


def _count(value: Any, where: str, minimum: int) -> int:
    if not _is_int(value) or value < minimum:
        raise TuneError(f"{where}={value!r} must be an integer >= {minimum}")
    return int(value)


def _seeds(value: Any) -> tuple[int, ...]:
    where = "tune.seeds"
    if _is_int(value) and value >= 1:
        return tuple(range(FIRST_TUNING_SEED, FIRST_TUNING_SEED + value))
    if isinstance(value, list) and value and all(_is_int(seed) and seed >= 0 for seed in value):
        if len(set(value)) != len(value):
            raise TuneError(f"{where}={value!r} repeats a seed")
        return tuple(value)
    raise TuneError(
        f"{where}={value!r} must be a positive count (seeds {FIRST_TUNING_SEED}, {FIRST_TUNING_SEED + 1}, "
        "...) or a non-empty list of non-negative integers"
    )


def _sampler(value: Any) -> dict[str, Any]:
    form = "tpe, random, or {type: tpe|random, seed: S, startup_trials: N}"
    raw = {"type": value} if isinstance(value, str) else _mapping(value, SAMPLER_KEYS, "tune.sampler", form)
    sampler = {
        "type": _choice(raw.get("type", "tpe"), SAMPLERS, "tune.sampler.type"),
        "seed": _count(raw.get("seed", 0), "tune.sampler.seed", 0),
    }
    if "startup_trials" in raw:
        if sampler["type"] != "tpe":
            raise TuneError("tune.sampler.startup_trials is an option of the tpe sampler only")
        sampler["startup_trials"] = _count(raw["startup_trials"], "tune.sampler.startup_trials", 0)
    return sampler


def _pruner(value: Any) -> dict[str, Any]:
    form = (
        "median, none, {type: median, startup_trials: N, warmup_steps: W, interval_steps: I} or "
        "{type: threshold, lower: L, upper: U, warmup_steps: W, interval_steps: I}"
    )
    if value is None:
        value = "none"
    raw = {"type": value} if isinstance(value, str) else _mapping(value, PRUNER_KEYS, "tune.pruner", form)
    kind = _choice(raw.get("type", "median"), PRUNERS, "tune.pruner.type")
    allowed = {
        "median": ("type", "startup_trials", "warmup_steps", "interval_steps"),
        "threshold": ("type", "lower", "upper", "warmup_steps", "interval_steps"),
        "none": ("type",),
    }[kind]
    extra = [key for key in raw if key not in allowed]
    if extra:
        raise TuneError(
            f"tune.pruner.{extra[0]} is not an option of the {kind} pruner; its options: {', '.join(allowed)}"
        )
    pruner: dict[str, Any] = {"type": kind}
    for key, minimum in (("startup_trials", 0), ("warmup_steps", 0), ("interval_steps", 1)):
        if key in raw:
            pruner[key] = _count(raw[key], f"tune.pruner.{key}", minimum)
    if kind == "threshold":
        for key in ("lower", "upper"):
            if key in raw:
                if not _is_number(raw[key]):
                    raise TuneError(f"tune.pruner.{key}={raw[key]!r} must be a finite number")
                pruner[key] = float(raw[key])
        if "lower" not in pruner and "upper" not in pruner:
            raise TuneError(f"tune.pruner: a threshold pruner needs lower, upper or both; valid form: {form}")
        if "lower" in pruner and "upper" in pruner and pruner["lower"] > pruner["upper"]:
            raise TuneError(f"tune.pruner: lower={pruner['lower']:g} > upper={pruner['upper']:g}")
    return pruner


def _dimension(key: str, raw: Any) -> Dimension:
    where = f"tune.search_space.{key}"
    if key not in KEYS:
        raise TuneError(
            f"{where}: {key!r} is not a config key (python train.py --list-keys lists them, e.g. "
            "reengage_alpha, learning_rate, batch_size, algo_kwargs.reengage_matching)"
        )
    if not isinstance(raw, dict) or raw.get("type") not in _FORMS:
        kind = raw.get("type") if isinstance(raw, dict) else None
        problem = f"type={kind!r} is not valid" if isinstance(raw, dict) else f"{raw!r} is not a distribution"
        raise TuneError(f"{where}: {problem}; valid forms: " + "; ".join(_FORMS.values()))
    kind = raw["type"]
    form = _FORMS[kind]
    unknown = [name for name in raw if name not in _FIELDS[kind]]
    if unknown:
        raise TuneError(f"{where}: unknown field {unknown[0]!r} for type {kind}; valid form: {form}")
    row = KEYS[key]
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise TuneError(f"{where}: choices={choices!r} must be a non-empty list; valid form: {form}")
        coerced = [row.coerce(choice) for choice in choices]
        for choice in coerced:
            problem = row.type_problem(choice) or row.value_problem(choice)
            if problem:
                raise TuneError(f"{where}: choice {problem}")
        labels = [json.dumps(choice, sort_keys=True) for choice in coerced]
        if len(set(labels)) != len(labels):
            raise TuneError(f"{where}: choices {choices!r} repeat a value")
        return Dimension(key, kind, choices=tuple(coerced))
    number = int if kind == "int" else float
    if number not in row.types:
        takes = ", ".join("null" if kind_ is type(None) else kind_.__name__ for kind_ in row.types)
        raise TuneError(
            f"{where}: {key} takes {takes}, not a {kind} range; valid forms: "
            + "; ".join(
                form_
                for name, form_ in _FORMS.items()
                if name == "categorical"
                or (name == "int" and int in row.types)
                or (name == "float" and float in row.types)
            )
        )
    for name in ("low", "high"):
        if name not in raw:
            raise TuneError(f"{where}: missing {name}; valid form: {form}")
    low, high = row.coerce(raw["low"]), row.coerce(raw["high"])
    check = _is_int if kind == "int" else _is_number
    for name, value in (("low", low), ("high", high)):
        if not check(value):
            raise TuneError(
                f"{where}: {name}={value!r} must be {'an integer' if kind == 'int' else 'a finite number'}; "
                f"valid form: {form}"
            )
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise TuneError(f"{where}: log={log!r} must be true or false; valid form: {form}")
    if low >= high:
        raise TuneError(f"{where}: low={low!r} >= high={high!r}; valid form: {form}")
    if log and low <= 0:
        raise TuneError(f"{where}: log: true needs low > 0, got low={low!r}; valid form: {form}")
    step = raw.get("step")
    if step is not None:
        if not check(step) or step <= 0:
            raise TuneError(f"{where}: step={step!r} must be a positive {'integer' if kind == 'int' else 'number'}")
        if log and not (kind == "int" and step == 1):
            raise TuneError(
                f"{where}: step and log: true exclude each other (Optuna samples a log range without a step)"
            )
    for name, value in (("low", low), ("high", high)):
        problem = row.value_problem(value)
        if problem:
            raise TuneError(f"{where}: {name}: {problem}")
    return Dimension(key, kind, low, high, log, step)


def parse_tune(raw: Any) -> TuneSpec:
    """The checked ``tune:`` section; :class:`TuneError` names the first problem."""
    form = "a mapping with keys " + ", ".join(TUNE_KEYS)
    raw = _mapping(raw if raw is not None else {}, TUNE_KEYS, "tune", form)
    space = raw.get("search_space")
    if not isinstance(space, dict) or not space:
        raise TuneError(
            f"tune.search_space={space!r} must map config keys to distributions; valid forms: "
            + "; ".join(_FORMS.values())
        )
    return TuneSpec(
        trials=_count(raw.get("trials", 20), "tune.trials", 1),
        seeds=_seeds(raw.get("seeds", 1)),
        metric=_choice(raw.get("metric", "auc"), METRICS, "tune.metric"),
        column=_choice(raw.get("column", SUCCESS_EVER), EVALUATION_COLUMNS, "tune.column"),
        direction=_choice(raw.get("direction", "maximize"), DIRECTIONS, "tune.direction"),
        sampler=_sampler(raw.get("sampler", "tpe")),
        pruner=_pruner(raw.get("pruner", "median")),
        search_space={str(key): _dimension(str(key), value) for key, value in space.items()},
    )


def tuned_raw(raw: dict[str, Any], spec: TuneSpec, settings: dict[str, Any]) -> dict[str, Any]:
    """The experiment file (without ``tune``) whose one variant trains ``settings`` on the tuning seeds."""
    base = {key: copy.deepcopy(value) for key, value in raw.items() if key != "tune"}
    variant = dict(base["variants"][0])
    variant["grid"] = {key: [copy.deepcopy(value)] for key, value in settings.items()}
    variant["seeds"] = list(spec.seeds)
    base["variants"] = [variant]
    return base


def check_tunable(raw: dict[str, Any], where: str) -> None:
    """The file around a ``tune:`` section: one environment, one variant, no grid (a study tunes one configuration)."""
    environments = raw.get("environments")
    variants = raw.get("variants") or []
    if isinstance(environments, list) and len(environments) != 1:
        raise TuneError(
            f"{where}: a file with a tune section names one environment (a study tunes one "
            f"configuration); got {len(environments)}: {', '.join(map(str, environments))}"
        )
    if len(variants) != 1:
        raise TuneError(
            f"{where}: a file with a tune section has one variant (the configuration tuned); got {len(variants)}"
        )
    variant = variants[0] if isinstance(variants[0], dict) else {}
    if raw.get("grid") or variant.get("grid"):
        raise TuneError(
            f"{where}: a file with a tune section has no grid: put the keys to search in "
            "tune.search_space, fixed values in overrides"
        )
    if isinstance(variant.get("environments"), list) and len(variant["environments"]) != 1:
        raise TuneError(f"{where}: variants[0].environments: a file with a tune section names one environment")
