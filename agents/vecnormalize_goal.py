"""The goal-gradient term in raw-goal units when training through stable-baselines3's ``VecNormalize``.

``VecNormalize`` hands the replay batch to the agent with goals normalised as
``z = clip((g - mean) / sigma, -clip_obs, clip_obs)``, ``sigma = sqrt(var + epsilon)``, and (with
``norm_reward=True``) rewards scaled by the running return's standard deviation. The ReenGAGE term is
defined on raw goals and raw rewards (Eq. 8.9), so:

* gradients: ``dQ/dg = (1 / sigma) dQ/dz`` where ``|z| < clip_obs``, and 0 where the goal was clipped;
  the raw-goal squared error is therefore ``(1 / sigma_i^2) * (normalised-goal squared error)`` on
  unclipped entries (:func:`raw_error_factor`, :func:`unclipped_mask`);
* the sparse mask ``R == c_low``: SB3 stores original rewards and scales them when sampling, so the
  sampled reward is ``normalize_reward(R)`` with the statistics of that moment; :func:`raw_sparse_rewards`
  maps it back (a sampled reward equal to ``normalize_reward(c_low)`` is ``c_low``; any other is
  divided back by the scale).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor


def normalises_goal(venv: Any, goal_key: str) -> bool:
    """Whether ``venv`` (a VecNormalize or None) normalises the observation entry ``goal_key``."""
    if venv is None or not venv.norm_obs:
        return False
    keys = getattr(venv, "norm_obs_keys", None)
    return keys is None or goal_key in keys


def goal_sigma(venv: Any, goal_key: str) -> Tensor:
    """``sqrt(var + epsilon)`` of the goal entry: the divisor VecNormalize applies, per dimension."""
    return torch.as_tensor(np.sqrt(venv.obs_rms[goal_key].var + venv.epsilon), dtype=torch.float32)


def raw_error_factor(venv: Any, goal_key: str) -> Tensor:
    """Per-dimension ``1 / sigma_i^2``: turns a normalised-goal squared error into the raw-goal one."""
    return goal_sigma(venv, goal_key).pow(-2)


def unclipped_mask(venv: Any, normalised_goal: Tensor) -> Tensor:
    """1 where VecNormalize did not clip the goal entry, 0 where it did (the raw gradient is 0 there)."""
    return (normalised_goal.detach().abs() < venv.clip_obs).to(torch.float32)


def raw_sparse_rewards(venv: Any, rewards: Tensor, c_low: float) -> Tensor:
    """The raw rewards behind a batch sampled through ``VecNormalize(norm_reward=True)``.

    Exact for the sparse reward's low value even when VecNormalize clipped it (that is all the mask
    needs); other values are un-scaled, which is exact unless ``clip_reward`` cut them.
    """
    if venv is None or not venv.norm_reward:
        return rewards
    scale = float(np.sqrt(venv.ret_rms.var + venv.epsilon))
    low_normalised = float(venv.normalize_reward(np.array([c_low], dtype=np.float32)).astype(np.float32)[0])
    is_low = torch.isclose(rewards, torch.full_like(rewards, low_normalised), rtol=1e-5, atol=1e-7)
    return torch.where(is_low, torch.full_like(rewards, c_low), rewards * scale)
