"""Agent classes with the observation normaliser and/or the baselines recipe mixed in.

``train.py`` picks an agent by name (``ddpg``, ``td3``, ...); the observation normaliser and the baselines recipe are mixins
(:class:`~reengage.agents.normalizer.ObservationNormalizerMixin`,
:class:`~reengage.agents.recipe.BaselinesRecipeMixin`). This module builds, once per combination,
the subclass that carries them, so that a run and its resumption load the same class.
"""

from __future__ import annotations

import functools

from .normalizer import ObservationNormalizerMixin
from .recipe import BaselinesRecipeMixin


@functools.cache
def extended_agent_class(base: type, normalize_observations: bool = False, baselines_recipe: bool = False) -> type:
    """``base`` itself, or a subclass of it with the requested mixins first in its method order."""
    mixins: list[type] = []
    suffix = ""
    if normalize_observations:
        mixins.append(ObservationNormalizerMixin)
        suffix += "Normalized"
    if baselines_recipe:
        mixins.append(BaselinesRecipeMixin)
        suffix += "Recipe"
    if not mixins:
        return base
    return type(f"{base.__name__}{suffix}", (*mixins, base), {"__module__": __name__, "__doc__": base.__doc__})
