"""The configuration keys: the one table a run's configuration is filled in, checked and documented from.

Each key appears once, with the types it accepts, its default, its meaning, its valid range or choices, the
algorithms that take it and whether the fast trainer supports it. :func:`reengage.experiment.config.resolve_config`
starts every configuration from the defaults here and checks it with :func:`check_config`; ``python train.py
--list-keys`` prints :func:`describe_keys`; every refusal is a one-line ValueError naming the key, the bad value
and what is valid, written by the key's row.

A dotted key (``her.n_sampled_goal``, ``algo_kwargs.reengage_matching``) lives inside a mapping key. It is checked
when it is set; its default is what the consumer (HerReplayBuffer, the agent, the normaliser) uses when it is not.
A configuration never fills dotted keys in, so a row added for one leaves every resolved configuration, and with
it every run's identity hash, unchanged.

This module reads no other module of the package except the algorithm registry, and imports neither torch nor
stable-baselines3: ``--list-keys`` and the checks stay fast. Keys that must be checked against code (the
arguments an agent, a policy, a replay buffer or an environment accepts) are checked in
:mod:`reengage.experiment.signature_checks`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reengage.algorithms import algo_spec, trainable_algo_spec

NUMBER = (int, float)
NULL = type(None)


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


@dataclass(frozen=True)
class ConfigKey:
    """One row of the table."""

    name: str  # dotted for a key inside a mapping key
    types: tuple[type, ...]  # accepted types; NULL: the key may be null
    default: Any  # top-level: where every configuration starts; dotted: what is used when the key is not set
    meaning: str
    range: Range | None = None
    choices: tuple[str, ...] | None = None  # the valid strings (a key that also takes a list takes any list)
    layers: bool = False  # a list of hidden-layer sizes, each a positive integer
    algos: tuple[str, ...] | None = None  # the algorithms that take it; None: every algorithm
    # False: the fast trainer refuses the key while it is in use (trainer: sb3 takes it); a tuple: only these
    # algorithms take it on the fast trainer
    fast: bool | tuple[str, ...] = True
    sb3: bool = True  # False: an option of the fast trainer's own update (trainer: sb3 refuses it)
    off: Any = None  # top-level: the value at which the option is not in use (a set dotted key is always in use)
    closed: bool = False  # a mapping whose keys are exactly this table's dotted rows under it

    @property
    def dotted(self) -> bool:
        return "." in self.name

    def fast_takes(self, algo: str) -> bool:
        """Whether the fast trainer supports this key for ``algo``."""
        return self.fast if isinstance(self.fast, bool) else algo in self.fast

    def in_use(self, value: Any) -> bool:
        """Whether ``value`` turns the option on (what the algorithm and trainer checks look at)."""
        return self.dotted or value != self.off

    def coerce(self, value: Any) -> Any:
        """The value as the key takes it: YAML 1.1 reads '1e-3' as a string, yet a number written so is one."""
        if isinstance(value, str) and float in self.types:
            try:
                return float(value)
            except ValueError:
                pass
        return value

    def type_problem(self, value: Any) -> str | None:
        """Why ``value`` has the wrong type for this key, else None."""
        if (isinstance(value, bool) and bool not in self.types) or not isinstance(value, self.types):
            names = ", ".join("null" if kind is NULL else kind.__name__ for kind in self.types)
            return f"{self.name}={value!r} has the wrong type; expected {names}"
        return None

    def value_problem(self, value: Any) -> str | None:
        """Why ``value`` (of an accepted type) is not valid for this key, else None."""
        if value is None:
            return None
        if self.range is not None and not isinstance(value, bool) and isinstance(value, NUMBER):
            if not math.isfinite(value):
                return f"{self.name}={value!r} is not a finite number; {self.name} must be {self.range.describe()}"
            if not self.range.contains(value):
                return f"{self.name}={value!r} is out of range; {self.name} must be {self.range.describe()}"
        if self.choices is not None and isinstance(value, str) and value not in self.choices:
            return f"{self.name}={value!r} is not valid; valid choices: {', '.join(self.choices)}"
        if self.layers and not (
            isinstance(value, list)
            and all(isinstance(size, int) and not isinstance(size, bool) and size >= 1 for size in value)
        ):
            return (
                f"{self.name}={value!r} is not valid; {self.name} must be a list of positive integers, e.g. [256, 256]"
            )
        return None

    def describe_valid(self) -> str:
        """What is valid, for ``--list-keys``: the range, the choices, the algorithms and the trainer."""
        parts = []
        if self.range is not None:
            parts.append(self.range.describe())
        if self.choices is not None:
            parts.append(f"one of {', '.join(self.choices)}" + (" or a list" if list in self.types else ""))
        if self.layers:
            parts.append("a list of positive integers")
        if self.algos is not None:
            parts.append(f"algos {', '.join(self.algos)}")
        if self.fast is False:
            parts.append("trainer sb3 only")
        elif self.fast is not True:
            parts.append(f"trainer fast for {', '.join(self.fast)}, sb3 for the others")
        if not self.sb3:
            parts.append("trainer fast only")
        return "; ".join(parts)


def _keys(*rows: ConfigKey) -> dict[str, ConfigKey]:
    return {row.name: row for row in rows}


_RECIPE_ALGOS = ("ddpg", "td3")

KEYS: dict[str, ConfigKey] = _keys(
    ConfigKey("env_kwargs", (dict,), {}, "keyword arguments for gym.make"),
    ConfigKey("timesteps", (int,), 5000, "environment steps to train", Range(1)),
    ConfigKey("buffer_size", (int,), 1_000_000, "replay buffer capacity", Range(1)),
    ConfigKey("learning_starts", (int,), 1000, "random-action steps before training", Range(0)),
    ConfigKey("batch_size", (int,), 256, "minibatch size", Range(1)),
    ConfigKey("learning_rate", NUMBER, 1e-3, "Adam learning rate", Range(0, low_open=True)),
    ConfigKey("gamma", NUMBER, 0.95, "discount", Range(0, 1, low_open=True)),
    ConfigKey("tau", NUMBER, 0.005, "Polyak coefficient of target networks", Range(0, 1, low_open=True)),
    ConfigKey("train_freq", (int,), 1, "environment steps between trainings", Range(1)),
    # -1: as many gradient steps as environment steps collected (SB3)
    ConfigKey("gradient_steps", (int,), 1, "gradient steps per training (-1: one per step collected)", Range(-1)),
    # every configuration holds the default, discrete ones too: dqn ignores it rather than refusing it
    ConfigKey(
        "action_noise_std",
        (*NUMBER, NULL),
        0.1,
        "std of Gaussian exploration noise (continuous actions; dqn ignores it)",
        Range(0),
    ),
    ConfigKey("net_arch", (list,), [256, 256], "hidden layer sizes", layers=True),
    ConfigKey("her", (dict, NULL), None, "HerReplayBuffer kwargs, or null for no HER"),
    ConfigKey("her.n_sampled_goal", NUMBER, 4, "relabelled goals per stored transition", Range(0)),
    ConfigKey(
        "her.goal_selection_strategy",
        (str,),
        "future",
        "where relabelled goals come from",
        choices=("future", "final", "episode"),
    ),
    ConfigKey("eval_freq", (int,), 2000, "environment steps between evaluations", Range(1)),
    ConfigKey("eval_episodes", (int,), 50, "episodes per evaluation", Range(1)),
    ConfigKey("eval_seed", (int,), 1_000_000, "seed of the first evaluation episode", Range(0)),
    ConfigKey("reengage_alpha", NUMBER, 0.2, "weight of the goal-gradient term (0 = baseline)", Range(0)),
    ConfigKey("reengage_mode", (str,), "sparse", "sparse (Eq. 8.9) or dense (Eq. 8.8)", choices=("sparse", "dense")),
    ConfigKey("c_low", NUMBER, -1.0, "low value of the sparse reward", Range()),
    ConfigKey(
        "reengage_diagnostics",
        (int,),
        0,
        "log goal-gradient diagnostics under reengage_diag/ every N gradient steps (0: off)",
        Range(0),
    ),
    ConfigKey("policy", (str,), "MultiInputPolicy", "SB3 policy name or 'module:Class'"),
    ConfigKey("policy_kwargs", (dict,), {}, "extra policy kwargs"),
    ConfigKey("policy_kwargs.embed_dim", NUMBER, 20, "output size of the goal-set encoder (DeepSetsPolicy)", Range(1)),
    ConfigKey(
        "policy_kwargs.encoder_arch",
        (list, NULL),
        [400, 400],
        "hidden layer sizes of the goal-set encoder (DeepSetsPolicy)",
        layers=True,
    ),
    ConfigKey("replay_buffer_class", (str, NULL), None, "'module:Class' of a replay buffer (with her: null)"),
    ConfigKey("replay_buffer_kwargs", (dict,), {}, "extra replay buffer kwargs"),
    ConfigKey("algo_kwargs", (dict,), {}, "extra keyword arguments for the agent's constructor"),
    # the ReenGAGE options an agent takes beside reengage_alpha, reengage_mode and c_low
    ConfigKey(
        "algo_kwargs.reengage_matching",
        (str,),
        "full",
        "rows the goal-gradient term matches: full (Eq. 8.8/8.9) or one_sided (only rows whose critic goal "
        "gradient is weaker than its target's); multi_ddpg takes full only",
        choices=("full", "one_sided"),
    ),
    ConfigKey(
        "algo_kwargs.reengage_dim_weights",
        (str, list),
        "none",
        "per-goal-dimension weights of the term: none, normalised (App. G.4), bounds, or a list of weights",
        choices=("none", "normalised", "bounds"),
    ),
    ConfigKey(
        "algo_kwargs.reengage_target_derivative",
        (str,),
        "total",
        "total (Eq. 8.9: the target gradient flows through the target action) or partial (held fixed)",
        choices=("total", "partial"),
        algos=("ddpg", "td3", "multi_ddpg"),
    ),
    ConfigKey("algo_kwargs.reengage_monitor", (bool,), False, "compute and log the term at alpha 0 too"),
    ConfigKey(
        "algo_kwargs.reengage_tau",
        NUMBER,
        0.5,
        "temperature of DQN's soft target (Eq. G.9; 0: hard max)",
        Range(0, 1),
        algos=("dqn",),
    ),
    ConfigKey(
        "algo_kwargs.reengage_soft_value_target",
        (bool,),
        False,
        "use the soft target in DQN's value term too (Eq. G.11)",
        algos=("dqn",),
    ),
    ConfigKey(
        "algo_kwargs.gate_update",
        (str,),
        "fused",
        "Multi-ReenGAGE's update: fused, or reference (SB3's train with the term's hook)",
        choices=("fused", "reference"),
        algos=("multi_ddpg",),
        sb3=False,
    ),
    ConfigKey(
        "algo_kwargs.actor_encoding",
        (str,),
        "after_step",
        "fused update: the actor's goal-set encoding after the critic step, or shared with it",
        choices=("after_step", "shared"),
        algos=("multi_ddpg",),
        sb3=False,
    ),
    ConfigKey(
        "algo_kwargs.encoder_precision",
        (str,),
        "float32",
        "fused update: precision of the goal-set encoder",
        choices=("float32", "bfloat16"),
        algos=("multi_ddpg",),
        sb3=False,
    ),
    # stable-baselines3's own arguments: which algorithm takes each is checked against its signature
    ConfigKey(
        "algo_kwargs.target_update_interval", NUMBER, None, "steps between target network updates (SB3)", Range(1)
    ),
    ConfigKey(
        "algo_kwargs.exploration_fraction",
        NUMBER,
        None,
        "share of training over which epsilon decays (SB3)",
        Range(0, 1),
    ),
    ConfigKey("algo_kwargs.exploration_initial_eps", NUMBER, None, "initial epsilon (SB3)", Range(0, 1)),
    ConfigKey("algo_kwargs.exploration_final_eps", NUMBER, None, "final epsilon (SB3)", Range(0, 1)),
    ConfigKey("algo_kwargs.policy_delay", NUMBER, None, "critic updates per actor update (SB3)", Range(1)),
    ConfigKey(
        "algo_kwargs.target_policy_noise", NUMBER, None, "std of the target policy smoothing noise (SB3)", Range(0)
    ),
    ConfigKey(
        "algo_kwargs.target_noise_clip", NUMBER, None, "clip of the target policy smoothing noise (SB3)", Range(0)
    ),
    ConfigKey("checkpoint_every", (int,), 0, "environment steps between checkpoints (0: none)", Range(0)),
    ConfigKey(
        "observation_noise",
        (dict, NULL),
        None,
        "train under smoothing noise: {kind, sigma, keys, ...} (reengage.observation_noise.SmoothingConfig)",
    ),
    ConfigKey("n_envs", (int,), 1, "parallel training environments (SubprocVecEnv when > 1)", Range(1)),
    ConfigKey(
        "obs_normalization",
        (dict, NULL),
        None,
        "running obs/goal normaliser in the policy: {clip_obs, clip_normalized, std_floor} or null",
        algos=("ddpg", "td3", "sac", "tqc"),
        fast=_RECIPE_ALGOS,
        off=None,
        closed=True,
    ),
    ConfigKey("obs_normalization.clip_obs", NUMBER, 200.0, "clip of raw observations", Range(0, low_open=True)),
    ConfigKey(
        "obs_normalization.clip_normalized", NUMBER, 5.0, "clip of normalised observations", Range(0, low_open=True)
    ),
    ConfigKey(
        "obs_normalization.std_floor", NUMBER, 1e-2, "smallest standard deviation divided by", Range(0, low_open=True)
    ),
    ConfigKey(
        "target_value_clip",
        (bool,),
        False,
        "clip the target critic's value to [c_low/(1-gamma), 0]",
        algos=_RECIPE_ALGOS,
        off=False,
    ),
    ConfigKey(
        "action_l2", NUMBER, 0.0, "weight of the actor's action L2 penalty", Range(0), algos=_RECIPE_ALGOS, off=0.0
    ),
    ConfigKey(
        "random_action_prob",
        NUMBER,
        0.0,
        "probability of a uniform random action after learning_starts",
        Range(0, 1),
        algos=_RECIPE_ALGOS,
        off=0.0,
    ),
    ConfigKey(
        "trainer",
        (str,),
        "fast",
        "fast (lean update, the default) or sb3 (stock stable-baselines3 train())",
        choices=("fast", "sb3"),
    ),
)

# the keys of the baselines' DDPG + HER recipe (reengage.agents.recipe): one mixin takes all three
RECIPE_KEYS = ("target_value_clip", "action_l2", "random_action_prob")


def top_level_keys() -> list[str]:
    """The keys every resolved configuration holds, in table order."""
    return [name for name, key in KEYS.items() if not key.dotted]


def defaults() -> dict[str, Any]:
    """A fresh configuration of every top-level key at its default (copies: the caller may change them)."""
    import copy

    return {name: copy.deepcopy(KEYS[name].default) for name in top_level_keys()}


def children(parent: str) -> list[ConfigKey]:
    """The dotted rows under the mapping key ``parent``."""
    return [key for key in KEYS.values() if key.name.startswith(parent + ".")]


def lookup(config: dict[str, Any], dotted: str) -> tuple[bool, Any]:
    """``(present, value)`` of a possibly dotted key; absent when a mapping on the way is missing or null."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def is_in_use(config: dict[str, Any], name: str) -> bool:
    """Whether the key ``name`` is set to a value that turns its option on."""
    present, value = lookup(config, name)
    return present and KEYS[name].in_use(value)


def check_config(config: dict[str, Any]) -> None:
    """Check a configuration against the table; ValueError with one line for the first problem.

    In order: each set key's type (dotted keys: top-level ones are checked as they are read, see
    :func:`reengage.experiment.config.validate`) and value; the keys of closed mappings; then, for the
    configuration's ``algo``, the keys it does not take and those the fast trainer does not support.
    Keys absent from ``config`` (a configuration saved before they existed) are not checked.
    """
    for key in KEYS.values():
        present, value = lookup(config, key.name)
        if not present:
            continue
        problem = (key.type_problem(value) if key.dotted else None) or key.value_problem(value)
        if problem:
            raise ValueError(problem)
    for key in KEYS.values():
        present, mapping = lookup(config, key.name)
        if key.closed and present and isinstance(mapping, dict):
            names = [child.name.rpartition(".")[2] for child in children(key.name)]
            unknown = sorted(set(mapping) - set(names))
            if unknown:
                raise ValueError(
                    f"{key.name}.{unknown[0]} is not a setting of {key.name}; valid keys: {', '.join(names)}"
                )
    if "algo" in config:
        _check_algorithm(config)


def _check_algorithm(config: dict[str, Any]) -> None:
    algo = config["algo"]
    trainable_algo_spec(algo)
    for key in KEYS.values():
        if key.algos is not None and algo not in key.algos and is_in_use(config, key.name):
            raise ValueError(f"{key.name} is an option of {', '.join(key.algos)}; algo {algo!r} does not take it")
    if config.get("trainer", "fast") != "fast" or algo_spec(algo).fast_agent is None:
        # the stock update has no place for the options of the fast trainer's own update
        stock_refused = [key.name for key in KEYS.values() if not key.sb3 and is_in_use(config, key.name)]
        if stock_refused:
            raise ValueError(
                f"{', '.join(stock_refused)} {'is an option' if len(stock_refused) == 1 else 'are options'} of the "
                "fast trainer's update; leave out --trainer sb3 (or set trainer=fast)"
            )
        return
    # the fast path refuses what it does not implement rather than train something that could silently
    # differ from the SB3 path
    used = [key.name for key in KEYS.values() if not key.fast_takes(algo) and is_in_use(config, key.name)]
    if used:
        # a key the fast trainer takes for other algorithms names this one
        for_algo = f" for algo {algo!r}" if any(KEYS[name].fast is not False for name in used) else ""
        raise ValueError(
            f"{', '.join(used)} {'is' if len(used) == 1 else 'are'} supported on the SB3 training path only"
            f"{for_algo}; add --trainer sb3 (or --set trainer=sb3)"
        )


def describe_keys() -> list[str]:
    """One line per key for ``python train.py --list-keys``: name, meaning, default, what is valid."""
    width = max(len(name) for name in KEYS)
    lines = []
    for key in KEYS.values():
        default = "the agent's" if key.dotted and key.default is None else repr(key.default)
        valid = key.describe_valid()
        lines.append(f"{key.name:{width}s} {key.meaning} (default {default}{'; ' + valid if valid else ''})")
    return lines
