"""Bit flipping with the goal fixed at all ones (the convention of stable-baselines3's ``BitFlippingEnv``).

Random start, ``Discrete(n)`` actions. Unlike stable-baselines3's environment, reaching the goal does
not end the episode unless ``terminate_on_success=True`` (see :mod:`bit_flipping_base` for why HER needs
that). The goal is still part of the observation, so HER can relabel it.
"""

from __future__ import annotations

import numpy as np

from .bit_flipping import BitFlippingEnv


class BitFlippingFixedGoalEnv(BitFlippingEnv):
    """As :class:`BitFlippingEnv`, but every episode's goal is the all-ones vector."""

    def _sample_goal(self) -> np.ndarray:
        return np.ones(self.n_bits, dtype=np.int8)
