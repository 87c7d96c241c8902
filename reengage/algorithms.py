"""The algorithms: the names ``train.py --algo`` accepts, the classes behind them, and the model classes a
saved model zip can be loaded with (``python -m reengage.certify --algo``).

Training (:mod:`reengage.experiment`) and certification (:mod:`reengage.robustness`) both name algorithms, so
this one registry sits below both packages. Entries are import strings: adding an agent never imports every
other agent's dependencies, and reading the registry imports neither torch nor stable-baselines3.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AlgoSpec:
    """One algorithm of ``train.py --algo``."""

    agent: str  # "module:Class" of the stable-baselines3 subclass (the stock training path, trainer: sb3)
    continuous_actions: bool  # takes Gaussian action noise; a discrete agent does not
    description: str
    fast_agent: str | None = None  # "module:Class" of the fast training path (config key trainer: fast)
    stock: str | None = None  # the stable-baselines3 class the agent extends, e.g. "DDPG"
    stock_package: str = "stable_baselines3"  # where the stock class lives (sb3_contrib for TQC and CrossQ)
    refusal: str | None = None  # why the algorithm cannot be trained here (train.py exits 2 with it), else None


ALGOS: dict[str, AlgoSpec] = {
    "ddpg": AlgoSpec(
        "reengage.agents:ReenGAGEDDPG",
        True,
        "DDPG (+ HER) with the ReenGAGE term",
        "reengage.agents.fast:FastReenGAGEDDPG",
        "DDPG",
    ),
    "td3": AlgoSpec(
        "reengage.agents:ReenGAGETD3",
        True,
        "TD3 (+ HER) with the ReenGAGE term",
        "reengage.agents.fast:FastReenGAGETD3",
        "TD3",
    ),
    "sac": AlgoSpec(
        "reengage.agents:ReenGAGESAC",
        True,
        "SAC (+ HER) with the ReenGAGE term",
        "reengage.agents.fast:FastReenGAGESAC",
        "SAC",
    ),
    "dqn": AlgoSpec(
        "reengage.agents:ReenGAGEDQN",
        False,
        "DQN (+ HER) with the soft-target ReenGAGE term (App. G.2)",
        "reengage.agents.fast:FastReenGAGEDQN",
        "DQN",
    ),
    "tqc": AlgoSpec(
        "reengage.agents:ReenGAGETQC",
        True,
        "TQC (sb3-contrib, + HER) with the ReenGAGE term on the truncated-quantile target",
        "reengage.agents.fast:FastReenGAGETQC",
        "TQC",
        "sb3_contrib",
    ),
    "crossq": AlgoSpec(
        "reengage.agents:ReenGAGECrossQ",
        True,
        "CrossQ (sb3-contrib): refused, see docs/agents.md",
        None,
        "CrossQ",
        "sb3_contrib",
        refusal=(
            "sb3-contrib's CrossQ takes no dict (goal-conditioned) observations, so neither HER nor a goal "
            "gradient can be formed (docs/agents.md)"
        ),
    ),
    "multi_ddpg": AlgoSpec(
        "reengage.agents:ReferenceMultiReenGAGEDDPG",
        True,
        "DDPG on goal sets with the Multi-ReenGAGE gate-gradient term (Sec. 8.5)",
        "reengage.agents:MultiReenGAGEDDPG",
        "DDPG",  # the fused update (agents/fast/multi_goal.py)
    ),
}


def import_object(path: str) -> Any:
    """Resolve ``"package.module:Name"``."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"expected 'module:Name', got {path!r}")
    return getattr(importlib.import_module(module_name), attribute)


def algo_spec(name: str) -> AlgoSpec:
    """The algorithm ``train.py --algo NAME`` trains; ValueError listing the valid names."""
    if name not in ALGOS:
        raise ValueError(f"unknown algo {name!r}; valid algos: {', '.join(sorted(ALGOS))}")
    return ALGOS[name]


def trainable_algo_spec(name: str) -> AlgoSpec:
    """:func:`algo_spec`, refusing (ValueError naming the trainable ones) an algorithm that cannot be trained here."""
    spec = algo_spec(name)
    if spec.refusal is not None:
        valid = ", ".join(sorted(key for key, other in ALGOS.items() if other.refusal is None))
        raise ValueError(f"algo {name!r} cannot be trained here: {spec.refusal}; valid algos: {valid}")
    return spec


def _class_name(path: str) -> str:
    return path.partition(":")[2]


# every model class name the registry knows: the stock stable-baselines3 classes, then the agents trained here
STOCK_CLASSES = tuple(dict.fromkeys(spec.stock for spec in ALGOS.values() if spec.stock))
_STOCK_PACKAGES = {spec.stock: spec.stock_package for spec in ALGOS.values() if spec.stock}
_AGENT_PATHS = {
    _class_name(path): path for spec in ALGOS.values() for path in (spec.agent, spec.fast_agent) if path is not None
}
MODEL_CLASSES = STOCK_CLASSES + tuple(_AGENT_PATHS)


def algorithm_class(name: str) -> type[Any]:
    """The model class called ``name``: a stock stable-baselines3 class (``"TD3"``), an agent of the registry
    (``"ReenGAGETD3"``, ``"FastReenGAGETD3"``), or any other class of :mod:`reengage.agents`."""
    if name in STOCK_CLASSES:
        return getattr(importlib.import_module(_STOCK_PACKAGES[name]), name)  # type: ignore[no-any-return]
    if name in _AGENT_PATHS:
        return import_object(_AGENT_PATHS[name])  # type: ignore[return-value]
    import reengage.agents as agents

    if isinstance(getattr(agents, name, None), type):
        return getattr(agents, name)
    raise ValueError(f"unknown algorithm {name!r}; valid: {', '.join(MODEL_CLASSES)} (or any class in reengage.agents)")


def detect_algorithm(model_path: str | Path) -> str:
    """Guess the stock class of a model zip from the policy class recorded inside it."""
    with zipfile.ZipFile(model_path) as archive:
        data = json.loads(archive.read("data"))
    # SB3 stores the policy class pickled, with its repr ("<class 'stable_baselines3.td3.policies...'>") beside it
    text = json.dumps(data.get("policy_class", {})).lower()
    for name, tag in (("TQC", ".tqc."), ("CrossQ", ".crossq."), ("DQN", ".dqn."), ("SAC", ".sac."), ("TD3", ".td3.")):
        if tag in text:
            return name
    raise ValueError(
        f"cannot tell the algorithm of {model_path}; pass it explicitly (one of {', '.join(MODEL_CLASSES)})"
    )
