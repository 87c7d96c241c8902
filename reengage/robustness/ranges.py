"""Where the return range of an episode certificate comes from: the environment's declaration or the user.

The return certificate (:func:`reengage.robustness.episode.certify_return`) integrates a survival function over
a KNOWN range ``[R_min, R_max]``; a range that is too narrow makes it false (a guessed [-10, 0] for
TheoryDense, whose rewards reach about +-24 per step, "certified" -10 against an attack that got -16.1). So the
range is never guessed:

- the user gives the return range (``--return-range MIN MAX``), or
- the environment declares its true PER-STEP reward range as an attribute ``reward_range = (low, high)`` (on the
  environment or on a wrapper that changes rewards; a property is fine), or its spec carries ``reward_range``;
  every environment of reengage declares it. The return range is then ``[min(low, L low), max(high, L high)]``
  for episodes of at most ``L`` steps (the time limit of the spec or the environment's ``horizon``; episodes may
  end early, hence the min / max with one step).

With neither, :func:`return_range` raises :class:`ReturnRangeUnknown`, whose message says how to supply it.
A wrapper that changes rewards (a ``gymnasium.RewardWrapper``) without declaring its own range voids the
environment's declaration.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym

DECLARATION = "reward_range"


class ReturnRangeUnknown(ValueError):
    """Neither the user nor the environment says what range the returns lie in."""


def _as_range(value: Any, where: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"{where} must be finite with low <= high, got {value!r}")
    return low, high


def _unbounded_default(value: Any) -> bool:
    """gymnasium < 1.0 gave every Env ``reward_range = (-inf, inf)``: that declares nothing."""
    try:
        return all(math.isinf(float(v)) for v in value)
    except (TypeError, ValueError):
        return False


def declared_reward_range(env: gym.Env) -> tuple[float, float] | None:
    """The per-step reward range the environment declares (see the module docstring), or None."""
    layer: Any = env
    while True:
        value = getattr(layer, DECLARATION, None)  # gymnasium >= 1.0 wrappers do not forward attributes
        if value is not None and not _unbounded_default(value):
            return _as_range(value, f"{type(layer).__name__}.{DECLARATION}")
        if isinstance(layer, gym.RewardWrapper):
            return None  # rewards are changed here and no range is declared for them
        if not isinstance(layer, gym.Wrapper):
            break
        layer = layer.env
    spec_range = getattr(getattr(env, "spec", None), DECLARATION, None)
    if spec_range is not None and not _unbounded_default(spec_range):
        return _as_range(spec_range, f"spec.{DECLARATION}")
    return None


def max_episode_length(env: gym.Env) -> int | None:
    """Longest possible episode: the spec's time limit or the environment's ``horizon`` (the smaller), or None."""
    limits = []
    spec_limit = getattr(getattr(env, "spec", None), "max_episode_steps", None)
    if spec_limit is not None:
        limits.append(int(spec_limit))
    horizon = getattr(env.unwrapped, "horizon", None)
    if isinstance(horizon, int) and horizon > 0:
        limits.append(horizon)
    return min(limits) if limits else None


def return_range(env: gym.Env, user_range: Any = None) -> tuple[tuple[float, float], str]:
    """(range, source): the user's return range, else one derived from the declared per-step range.

    Raises :class:`ReturnRangeUnknown` (with how to supply the range) when neither exists, and ValueError for a
    malformed user range.
    """
    if user_range is not None:
        low, high = _as_range(user_range, "--return-range")
        if not low < high:
            raise ValueError(f"--return-range needs MIN < MAX, got {list(user_range)}")
        return (low, high), "user (--return-range)"
    name = getattr(getattr(env, "spec", None), "id", None) or type(env.unwrapped).__name__
    per_step = declared_reward_range(env)
    if per_step is None:
        raise ReturnRangeUnknown(
            f"the return certificate needs the range of the episode return, and environment {name} declares no "
            f"per-step reward range; pass --return-range MIN MAX (the smallest and largest possible return), or "
            f"give the environment an attribute {DECLARATION} = (low, high) with its true per-step reward range"
        )
    length = max_episode_length(env)
    if length is None:
        raise ReturnRangeUnknown(
            f"environment {name} declares per-step rewards in {list(per_step)} but no episode length bound (no "
            "time limit in its spec and no integer 'horizon'); pass --return-range MIN MAX"
        )
    low, high = per_step
    rr = (min(low, length * low), max(high, length * high))
    if not rr[0] < rr[1]:
        raise ReturnRangeUnknown(f"environment {name} declares a constant reward {low}; the return is known exactly")
    return rr, f"declared per-step reward range {list(per_step)} x at most {length} steps"
