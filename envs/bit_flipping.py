"""Bit flipping as in the HER paper: random start, random goal, ``Discrete(n)`` actions flipping one bit.

See :mod:`bit_flipping_base` for the reward, the episode end (truncation at ``n_bits`` steps, no
termination on success, so HER relabelling stays exact) and the success flag.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from .bit_flipping_base import BitFlippingBase


class BitFlippingEnv(BitFlippingBase):
    """n bits; action ``i`` flips bit ``i``; start and goal drawn uniformly from ``{0, 1}^n``."""

    def _make_action_space(self) -> spaces.Space:
        return spaces.Discrete(self.n_bits)

    def _flip_mask(self, action: Any) -> np.ndarray:
        index = int(np.asarray(action).reshape(()))
        if not 0 <= index < self.n_bits:
            raise ValueError(f"action must be a bit index in [0, {self.n_bits}), got {action!r}")
        mask = np.zeros(self.n_bits, dtype=bool)
        mask[index] = True
        return mask

    def _sample_goal(self) -> np.ndarray:
        return self.np_random.integers(0, 2, size=self.n_bits, dtype=np.int8)
