"""ReenGAGE agents: thin subclasses of stable-baselines3 algorithms, importable as ``reengage.agents``.

Each takes the SB3 class's arguments plus ``reengage_alpha``, ``reengage_mode``, ``c_low`` and the
other options of :class:`~reengage.agents.goal_gradient.GoalGradientMixin`. ``ReenGAGEDDPG``, ``ReenGAGETD3``,
``ReenGAGESAC``, ``ReenGAGEDQN`` and ``ReenGAGETQC`` (sb3-contrib's TQC) train with SB3's ``train()`` (config key ``trainer: sb3``); their fast
counterparts are in :mod:`reengage.agents.fast`. ``MultiReenGAGEDDPG`` and ``MultiReenGAGETD3`` train
fused (``trainer: fast``); ``ReferenceMultiReenGAGEDDPG`` and ``ReferenceMultiReenGAGETD3`` are their SB3
reference (``trainer: sb3``). ``ReenGAGECrossQ`` refuses to be built (see :mod:`reengage.agents.crossq`).
"""

from .crossq import ReenGAGECrossQ
from .deep_sets import DeepSetsActor, DeepSetsCritic, DeepSetsEncoder, DeepSetsTD3Policy
from .dqn import DQNGoalGradient, ReenGAGEDQN
from .fast import MultiReenGAGEDDPG, MultiReenGAGETD3
from .goal_gradient import GoalGradientMixin
from .goal_set_replay import GoalSetReplayBuffer, GoalSetReplaySamples
from .her_replay import FastHerReplayBuffer
from .multi_goal import GateGradientMixin, ReferenceMultiReenGAGEDDPG, ReferenceMultiReenGAGETD3
from .sac import ReenGAGESAC, SACGoalGradient
from .td3 import ReenGAGEDDPG, ReenGAGETD3, TD3GoalGradient
from .tqc import ReenGAGETQC, TQCGoalGradient

__all__ = [
    "GoalGradientMixin",
    "TD3GoalGradient",
    "SACGoalGradient",
    "DQNGoalGradient",
    "ReenGAGEDDPG",
    "ReenGAGETD3",
    "ReenGAGESAC",
    "TQCGoalGradient",
    "ReenGAGETQC",
    "ReenGAGECrossQ",
    "GateGradientMixin",
    "MultiReenGAGEDDPG",
    "MultiReenGAGETD3",
    "ReferenceMultiReenGAGEDDPG",
    "ReferenceMultiReenGAGETD3",
    "DeepSetsEncoder",
    "DeepSetsActor",
    "DeepSetsCritic",
    "DeepSetsTD3Policy",
    "GoalSetReplayBuffer",
    "GoalSetReplaySamples",
    "FastHerReplayBuffer",
    "ReenGAGEDQN",
]
