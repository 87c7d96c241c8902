"""Bit flipping with continuous actions, for DDPG / TD3 / SAC (and their ReenGAGE versions).

The action is a vector in ``[-1, 1]^n``; bit ``i`` flips where ``a_i > 0``, so one step may flip any
subset of the bits. Random start and random goal as in the HER paper; reward, episode end and success
as in :mod:`bit_flipping_base`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from .bit_flipping_base import BitFlippingBase


class BitFlippingContinuousEnv(BitFlippingBase):
    """n bits; a continuous action flips every bit whose component is positive."""

    def _make_action_space(self) -> spaces.Space:
        return spaces.Box(-1.0, 1.0, shape=(self.n_bits,), dtype=np.float32)

    def _flip_mask(self, action: Any) -> np.ndarray:
        values = np.asarray(action, dtype=np.float32)
        if values.size != self.n_bits:
            raise ValueError(f"action must have {self.n_bits} components, got shape {values.shape}")
        return values.reshape(self.n_bits) > 0

    def _sample_goal(self) -> np.ndarray:
        return self.np_random.integers(0, 2, size=self.n_bits, dtype=np.int8)
