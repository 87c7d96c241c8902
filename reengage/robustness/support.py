"""Which observation and action spaces the smoothing certificates support, checked up front.

Smoothing adds noise to (or ablates) real-valued or binary features, so only these are accepted:

- observations: a ``Box`` (floating or integer dtype), a ``MultiBinary``, or a flat ``Dict`` whose values are
  ``Box`` or ``MultiBinary`` spaces;
- actions: ``Discrete`` (starting at 0: the votes index actions) or a ``Box`` with finite bounds.

Everything else is refused with a ``ValueError`` that names the space and what is supported, before any model is
loaded or any sample drawn: a ``Discrete`` observation (FrozenLake) is a category, not a point of R^d, so l2
noise on its index means nothing; ``MultiDiscrete`` indices are categories too; ``Tuple``, ``Text``, ``Graph``,
``Sequence`` and nested ``Dict`` spaces have no fixed flat vector for a threat model.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

SUPPORTED_OBSERVATIONS = "Box, MultiBinary, or a flat Dict of Box / MultiBinary spaces"
SUPPORTED_ACTIONS = "Discrete (starting at 0) or Box with finite bounds"


def _leaf_ok(space: spaces.Space) -> bool:
    return isinstance(space, (spaces.Box, spaces.MultiBinary))


def check_observation_space(space: spaces.Space) -> None:
    """Raise ValueError unless smoothing supports ``space`` (see the module docstring)."""
    if isinstance(space, spaces.Dict):
        bad = {k: s for k, s in space.spaces.items() if not _leaf_ok(s)}
        if bad:
            key, sub = next(iter(bad.items()))
            raise ValueError(
                f"unsupported observation space: key {key!r} of the Dict is {sub}; smoothing supports "
                f"{SUPPORTED_OBSERVATIONS}"
            )
        return
    if not _leaf_ok(space):
        raise ValueError(f"unsupported observation space {space}; smoothing supports {SUPPORTED_OBSERVATIONS}")


def check_action_space(space: spaces.Space) -> None:
    """Raise ValueError unless the certificates support ``space`` (see the module docstring)."""
    if isinstance(space, spaces.Discrete):
        if int(space.start) != 0:
            raise ValueError(f"unsupported action space {space} (start {space.start}); supported: {SUPPORTED_ACTIONS}")
        return
    if isinstance(space, spaces.Box):
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ValueError(
                f"unsupported action space {space}: bounded-output smoothing needs finite low/high; supported: "
                f"{SUPPORTED_ACTIONS}"
            )
        return
    raise ValueError(f"unsupported action space {space}; supported: {SUPPORTED_ACTIONS}")


def noise_dtype(space: spaces.Space, keys: tuple[str, ...]) -> np.dtype:
    """The floating dtype in which noise is added to the smoothed ``keys``.

    float64 if any smoothed key is stored in float64 (casting it to float32 first would round the clean point
    before the noise, e.g. by 0.0625 at 1e6, and the certificate would be about a different point); float32
    otherwise (float32 and integer/binary values are exact in float32).
    """
    subs = [space.spaces[k] for k in keys if k in space.spaces] if isinstance(space, spaces.Dict) else [space]
    for sub in subs:
        if sub.dtype is not None and np.dtype(sub.dtype) == np.float64:
            return np.dtype(np.float64)
    return np.dtype(np.float32)
