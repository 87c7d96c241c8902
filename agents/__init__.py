"""ReenGAGE agents: thin subclasses of stable-baselines3 algorithms, importable as ``reengage.agents``.

Each takes the SB3 class's arguments plus ``reengage_alpha``, ``reengage_mode``, ``c_low`` and the
other options of :class:`~reengage.agents.goal_gradient.GoalGradientMixin`.
"""

from .dqn import DQNGoalGradient, ReenGAGEDQN
from .deep_sets import DeepSetsActor, DeepSetsCritic, DeepSetsEncoder, DeepSetsTD3Policy
from .goal_gradient import GoalGradientMixin
from .goal_set_replay import GoalSetReplayBuffer, GoalSetReplaySamples
from .her_replay import FastHerReplayBuffer
from .multi_goal import GateGradientMixin, MultiReenGAGEDDPG, MultiReenGAGETD3
from .sac import ReenGAGESAC, SACGoalGradient
from .td3 import ReenGAGEDDPG, ReenGAGETD3, TD3GoalGradient

__all__ = [
    "GoalGradientMixin",
    "TD3GoalGradient",
    "SACGoalGradient",
    "DQNGoalGradient",
    "ReenGAGEDDPG",
    "ReenGAGETD3",
    "ReenGAGESAC",
    "GateGradientMixin",
    "MultiReenGAGEDDPG",
    "MultiReenGAGETD3",
    "DeepSetsEncoder",
    "DeepSetsActor",
    "DeepSetsCritic",
    "DeepSetsTD3Policy",
    "GoalSetReplayBuffer",
    "GoalSetReplaySamples",
    "FastHerReplayBuffer",
    "ReenGAGEDQN",
]
