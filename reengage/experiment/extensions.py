"""Config keys of the robotics issue: parallel environments, observation normalisation, the baselines recipe.

Kept apart from :mod:`reengage.experiment.build` so the shared builder only calls two functions:
:func:`check_extension_values` when a config is resolved and :func:`extension_arguments` when an
agent is built.

Keys (see ``python train.py --list-keys``):

* ``n_envs``: parallel training environments (``SubprocVecEnv`` when > 1), for every environment.
* ``obs_normalization``: ``null`` (off) or a mapping ``{clip_obs: 200, clip_normalized: 5, std_floor: 0.01}``
  (any subset): the running normaliser inside the policy (:mod:`reengage.agents.normalizer`).
* ``target_value_clip``, ``action_l2``, ``random_action_prob``: the baselines' DDPG + HER recipe
  (:mod:`reengage.agents.recipe`), for ``ddpg`` and ``td3``.
"""

from __future__ import annotations

from typing import Any

NORMALIZATION_DEFAULTS = {"clip_obs": 200.0, "clip_normalized": 5.0, "std_floor": 1e-2}
RECIPE_KEYS = ("target_value_clip", "action_l2", "random_action_prob")
RECIPE_ALGOS = ("ddpg", "td3")
NORMALIZATION_ALGOS = ("ddpg", "td3", "sac")


def normalization_settings(config: dict[str, Any]) -> dict[str, float] | None:
    """The normaliser's settings with defaults filled in, or None when normalisation is off."""
    given = config.get("obs_normalization")
    if given is None:
        return None
    unknown = sorted(set(given) - set(NORMALIZATION_DEFAULTS))
    if unknown:
        raise ValueError(
            f"obs_normalization: unknown keys {unknown}; valid keys: {', '.join(NORMALIZATION_DEFAULTS)}"
        )
    settings = {**NORMALIZATION_DEFAULTS, **given}
    for key, value in settings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"obs_normalization.{key} must be a positive number, got {value!r}")
    return {key: float(value) for key, value in settings.items()}


def uses_recipe(config: dict[str, Any]) -> bool:
    return bool(config.get("target_value_clip")) or config.get("action_l2", 0) > 0 or config.get("random_action_prob", 0) > 0


def check_extension_values(config: dict[str, Any], algo: str) -> None:
    """Range checks of the keys above (ValueError naming the value and the valid range)."""
    if config["n_envs"] < 1:
        raise ValueError(f"n_envs must be >= 1, got {config['n_envs']!r}")
    if config["action_l2"] < 0:
        raise ValueError(f"action_l2 must be >= 0, got {config['action_l2']!r}")
    if not 0 <= config["random_action_prob"] <= 1:
        raise ValueError(f"random_action_prob must be in [0, 1], got {config['random_action_prob']!r}")
    if uses_recipe(config) and algo not in RECIPE_ALGOS:
        raise ValueError(
            f"target_value_clip, action_l2 and random_action_prob are options of {', '.join(RECIPE_ALGOS)}; "
            f"algo {algo!r} does not take them"
        )
    if normalization_settings(config) is not None and algo not in NORMALIZATION_ALGOS:
        raise ValueError(
            f"obs_normalization is available for {', '.join(NORMALIZATION_ALGOS)}; algo {algo!r} does not take it"
        )


def extended_class(base: type, config: dict[str, Any]) -> type:
    """The agent class with the mixins the config asks for."""
    from reengage.agents.compose import extended_agent_class

    return extended_agent_class(base, normalization_settings(config) is not None, uses_recipe(config))


def extension_arguments(config: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(policy_kwargs entries, agent constructor kwargs)`` for the normaliser and the recipe."""
    policy_kwargs: dict[str, Any] = {}
    settings = normalization_settings(config)
    if settings is not None:
        from reengage.agents.normalizer import normalizer_policy_kwargs

        policy_kwargs.update(normalizer_policy_kwargs(**settings))
    agent_kwargs = {key: config[key] for key in RECIPE_KEYS} if uses_recipe(config) else {}
    return policy_kwargs, agent_kwargs
