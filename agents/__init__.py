"""ReenGAGE agents: thin subclasses of stable-baselines3 algorithms, importable as ``reengage.agents``.

Each takes the SB3 class's arguments plus ``reengage_alpha``, ``reengage_mode``, ``c_low`` and the
other options of :class:`~reengage.agents.goal_gradient.GoalGradientMixin`.
"""

from .goal_gradient import GoalGradientMixin
from .sac import ReenGAGESAC, SACGoalGradient
from .td3 import ReenGAGEDDPG, ReenGAGETD3, TD3GoalGradient

__all__ = [
    "GoalGradientMixin",
    "TD3GoalGradient",
    "SACGoalGradient",
    "ReenGAGEDDPG",
    "ReenGAGETD3",
    "ReenGAGESAC",
]
