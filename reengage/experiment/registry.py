"""Names that ``train.py --algo`` accepts, and the classes behind them.

Entries are import strings so that adding an agent never imports every other agent's dependencies.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class AlgoSpec:
    agent: str  # "module:Class" of the stable-baselines3 subclass
    continuous_actions: bool  # takes Gaussian action noise; a discrete agent does not
    description: str
    fast_agent: str | None = None  # "module:Class" of the fast training path (config key trainer: fast)


ALGOS: dict[str, AlgoSpec] = {
    "ddpg": AlgoSpec("reengage.agents:ReenGAGEDDPG", True, "DDPG (+ HER) with the ReenGAGE term",
                     "reengage.agents.fast:FastReenGAGEDDPG"),
    "td3": AlgoSpec("reengage.agents:ReenGAGETD3", True, "TD3 (+ HER) with the ReenGAGE term",
                    "reengage.agents.fast:FastReenGAGETD3"),
    "sac": AlgoSpec("reengage.agents:ReenGAGESAC", True, "SAC (+ HER) with the ReenGAGE term",
                    "reengage.agents.fast:FastReenGAGESAC"),
    "dqn": AlgoSpec("reengage.agents:ReenGAGEDQN", False, "DQN (+ HER) with the soft-target ReenGAGE term (App. G.2)",
                    "reengage.agents.fast:FastReenGAGEDQN"),
    "multi_ddpg": AlgoSpec(
        "reengage.agents:ReferenceMultiReenGAGEDDPG", True,
        "DDPG on goal sets with the Multi-ReenGAGE gate-gradient term (Sec. 8.5)",
        "reengage.agents:MultiReenGAGEDDPG",  # the fused update (agents/fast/multi_goal.py)
    ),
}


def import_object(path: str) -> object:
    """Resolve ``"package.module:Name"``."""
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise ValueError(f"expected 'module:Name', got {path!r}")
    return getattr(importlib.import_module(module_name), attribute)


def algo_spec(name: str) -> AlgoSpec:
    if name not in ALGOS:
        raise ValueError(f"unknown algo {name!r}; valid algos: {', '.join(sorted(ALGOS))}")
    return ALGOS[name]
