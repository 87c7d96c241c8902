"""Goal-conditioned environments of reengage, importable as ``reengage.envs``.

Importing this package registers every environment with gymnasium under the ``reengage/`` namespace,
so ``gym.make("reengage/ContinuousSeek-v0", d=10)`` works after ``import reengage.envs``.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from .bit_flipping import BitFlippingEnv
from .bit_flipping_continuous import BitFlippingContinuousEnv
from .bit_flipping_fixed import BitFlippingFixedGoalEnv
from .continuous_seek import ContinuousSeekEnv
from .drive_seek import DriveSeekEnv
from .noisy_seek import NoisySeekEnv
from .theory_dense import TheoryDenseEnv
from .theory_sparse import TheorySparseEnv

__all__ = [
    "BitFlippingEnv",
    "BitFlippingFixedGoalEnv",
    "BitFlippingContinuousEnv",
    "ContinuousSeekEnv",
    "DriveSeekEnv",
    "NoisySeekEnv",
    "TheoryDenseEnv",
    "TheorySparseEnv",
    "register_all",
]

_ENTRY = __name__ + "."

_ENVIRONMENTS: dict[str, tuple[str, dict]] = {
    # bit flipping (HER paper; App. G.2); kwargs: n_bits, horizon (default n_bits), terminate_on_success
    "reengage/BitFlipping-v0": (_ENTRY + "bit_flipping:BitFlippingEnv", {}),
    "reengage/BitFlipping20-v0": (_ENTRY + "bit_flipping:BitFlippingEnv", {"n_bits": 20}),
    "reengage/BitFlipping40-v0": (_ENTRY + "bit_flipping:BitFlippingEnv", {"n_bits": 40}),
    "reengage/BitFlippingFixed-v0": (_ENTRY + "bit_flipping_fixed:BitFlippingFixedGoalEnv", {}),
    "reengage/BitFlippingContinuous-v0": (_ENTRY + "bit_flipping_continuous:BitFlippingContinuousEnv", {}),
    "reengage/ContinuousSeek-v0": (_ENTRY + "continuous_seek:ContinuousSeekEnv", {}),
    "reengage/ContinuousSeek5-v0": (_ENTRY + "continuous_seek:ContinuousSeekEnv", {"d": 5}),
    "reengage/ContinuousSeek10-v0": (_ENTRY + "continuous_seek:ContinuousSeekEnv", {"d": 10}),
    "reengage/ContinuousSeek20-v0": (_ENTRY + "continuous_seek:ContinuousSeekEnv", {"d": 20}),
    "reengage/ContinuousSeekDense-v0": (
        _ENTRY + "continuous_seek:ContinuousSeekEnv",
        {"reward_type": "dense"},
    ),
    # Multi-ReenGAGE goal sets of Sec. 8.5 / App. G.6.4 (kwargs: n_max, horizon, render_mode)
    "reengage/DriveSeek-v0": (_ENTRY + "drive_seek:DriveSeekEnv", {}),
    "reengage/NoisySeek-v0": (_ENTRY + "noisy_seek:NoisySeekEnv", {}),
    # the same with at most 50 goals (n ~ U{1..50}): the reduced setting of docs/multi_goal.md
    "reengage/DriveSeek50-v0": (_ENTRY + "drive_seek:DriveSeekEnv", {"n_max": 50}),
    "reengage/NoisySeek50-v0": (_ENTRY + "noisy_seek:NoisySeekEnv", {"n_max": 50}),
    # theory classes of Sec. 8.6.2 / App. G.1 (kwargs: d, rotation_seed, horizon)
    "reengage/TheoryDense-v0": (_ENTRY + "theory_dense:TheoryDenseEnv", {}),
    "reengage/TheorySparse-v0": (_ENTRY + "theory_sparse:TheorySparseEnv", {}),
}


def register_all() -> None:
    """Register the environments (idempotent)."""
    for env_id, (entry_point, kwargs) in _ENVIRONMENTS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs=kwargs)


register_all()
