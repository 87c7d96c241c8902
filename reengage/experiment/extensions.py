"""The robotics options of a configuration as what the agent is built with: mixins and constructor arguments.

* ``obs_normalization``: the running normaliser inside the policy (:mod:`reengage.agents.normalizer`), its
  settings filled in from the table's defaults.
* ``target_value_clip``, ``action_l2``, ``random_action_prob``: the baselines' DDPG + HER recipe
  (:mod:`reengage.agents.recipe`).

Which algorithms and trainer take them, and their valid values, are rows of
:mod:`reengage.experiment.config_keys` (checked when the configuration is resolved); this module only reads a
checked configuration. :func:`extensions_of` is called once per agent built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config_keys import RECIPE_KEYS, children, is_in_use


@dataclass(frozen=True)
class Extensions:
    """The mixins and extra arguments one configuration asks for."""

    normalization: dict[str, float] | None  # the normaliser's settings, None when it is off
    recipe: dict[str, Any] = field(default_factory=dict)  # the recipe's keys and values, empty when it is off

    def agent_class(self, base: type) -> type:
        """``base`` with the mixins mixed in (the same class object for the same combination)."""
        from reengage.agents.compose import extended_agent_class

        return extended_agent_class(base, self.normalization is not None, bool(self.recipe))

    def policy_kwargs(self) -> dict[str, Any]:
        """Entries to add to the policy's keyword arguments."""
        if self.normalization is None:
            return {}
        from reengage.agents.normalizer import normalizer_policy_kwargs

        return normalizer_policy_kwargs(**self.normalization)

    def agent_kwargs(self) -> dict[str, Any]:
        """Entries to add to the agent's constructor arguments."""
        return dict(self.recipe)


def normalization_settings(config: dict[str, Any]) -> dict[str, float] | None:
    """The normaliser's settings with the table's defaults filled in, or None when normalisation is off."""
    given = config.get("obs_normalization")
    if given is None:
        return None
    settings = {key.name.rpartition(".")[2]: key.default for key in children("obs_normalization")}
    settings.update(given)
    return {name: float(value) for name, value in settings.items()}


def extensions_of(config: dict[str, Any]) -> Extensions:
    """What a checked configuration asks of the agent beyond its algorithm."""
    recipe = {key: config[key] for key in RECIPE_KEYS} if any(is_in_use(config, key) for key in RECIPE_KEYS) else {}
    return Extensions(normalization_settings(config), recipe)
