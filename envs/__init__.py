"""Goal-conditioned environments of reengage, importable as ``reengage.envs``.

Importing this package registers every environment with gymnasium under the ``reengage/`` namespace,
so ``gym.make("reengage/ContinuousSeek-v0", d=10)`` works after ``import reengage.envs``.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from .continuous_seek import ContinuousSeekEnv

__all__ = ["ContinuousSeekEnv", "register_all"]

_ENTRY = __name__ + "."

_ENVIRONMENTS: dict[str, tuple[str, dict]] = {
    "reengage/ContinuousSeek-v0": (_ENTRY + "continuous_seek:ContinuousSeekEnv", {}),
    "reengage/ContinuousSeek5-v0": (_ENTRY + "continuous_seek:ContinuousSeekEnv", {"d": 5}),
    "reengage/ContinuousSeek10-v0": (_ENTRY + "continuous_seek:ContinuousSeekEnv", {"d": 10}),
    "reengage/ContinuousSeek20-v0": (_ENTRY + "continuous_seek:ContinuousSeekEnv", {"d": 20}),
    "reengage/ContinuousSeekDense-v0": (
        _ENTRY + "continuous_seek:ContinuousSeekEnv",
        {"reward_type": "dense"},
    ),
}


def register_all() -> None:
    """Register the environments (idempotent)."""
    for env_id, (entry_point, kwargs) in _ENVIRONMENTS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=entry_point, kwargs=kwargs)


register_all()
