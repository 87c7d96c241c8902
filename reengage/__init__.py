"""reengage: goal-gradient critic losses for goal-conditioned reinforcement learning.

Imports a user writes::

    from reengage import losses                     # pure loss functions (Eq. 8.8, 8.9, 8.19, G.10)
    import reengage.envs                            # registers the reengage/... gymnasium ids
    from reengage.agents import ReenGAGEDDPG, ReenGAGETD3, ReenGAGESAC
"""

__version__ = "0.1.0"
