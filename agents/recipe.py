"""The baselines' DDPG + HER recipe as options of stable-baselines3's DDPG and TD3, without copying ``train()``.

OpenAI baselines' HER (the robotics tasks' reference implementation, used by the paper) differs from a
plain DDPG in a few places; each is an option here, added through a hook rather than a new ``train()``:

* ``target_value_clip``: the bootstrapped value is clipped to ``[c_low / (1 - gamma), 0]``
  (``[-1/(1 - gamma), 0]`` for rewards in {-1, 0}), the range of any sparse return. A forward hook
  on the target critic clamps its output, so the TD target and the ReenGAGE target gradient see the
  same clipped function (``torch.clamp`` passes no gradient where it clips). Baselines clip
  ``r + gamma * Q'`` instead; for rewards in {-1, 0} clipping ``Q'`` is never looser (see
  docs/robotics.md).
* ``action_l2``: ``action_l2 * mean(pi(s)^2)`` added to the actor loss, on the actor's own (pre-noise,
  [-1, 1]-scaled) action. A gradient hook on the actor's output during training adds the penalty's
  gradient ``2 * action_l2 * pi(s) / numel`` to the gradient flowing back from ``-Q``; the result is
  exactly the gradient of the penalised loss (tested against the explicit loss).
* ``random_action_prob``: after the Gaussian noise on the scaled action (SB3's ``action_noise``,
  which already acts on the [-1, 1] action), each environment's action is replaced, with this
  probability, by a uniform random action, as baselines' ``random_eps`` does. It draws from numpy's
  global generator, like SB3's action noise, so checkpoints restore it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn


def sparse_return_range(c_low: float, gamma: float) -> tuple[float, float]:
    """``(c_low / (1 - gamma), 0)``: the range of a discounted sum of rewards in ``[c_low, 0]``."""
    if gamma >= 1:
        raise ValueError("target_value_clip needs gamma < 1")
    return c_low / (1.0 - gamma), 0.0


def agent_target_value_range(agent: Any) -> tuple[float, float]:
    """:func:`sparse_return_range` of an agent's ``c_low`` (the sparse rewards' -1 without one) and ``gamma``."""
    return sparse_return_range(float(getattr(agent, "c_low", -1.0)), float(agent.gamma))


class BaselinesRecipeMixin:
    """Target-value clipping, action L2 penalty and random actions for SB3's TD3 and DDPG (and ReenGAGE's).

    Place it before the agent class: ``class A(BaselinesRecipeMixin, ReenGAGEDDPG)``.

    Args (in addition to the agent's own):
        target_value_clip: clip the target critic's value to ``[c_low / (1 - gamma), 0]``.
        action_l2: weight of the actor's action L2 penalty (baselines: 1.0); 0 disables it.
        random_action_prob: probability of a uniform random action per environment step after
            ``learning_starts`` (baselines' ``random_eps``: 0.3); 0 disables it.
    """

    def __init__(
        self,
        *args: Any,
        target_value_clip: bool = False,
        action_l2: float = 0.0,
        random_action_prob: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if not np.isfinite(action_l2) or action_l2 < 0:
            raise ValueError(f"action_l2 must be a finite number >= 0, got {action_l2!r}")
        if not 0.0 <= random_action_prob <= 1.0:
            raise ValueError(f"random_action_prob must be in [0, 1], got {random_action_prob!r}")
        self.target_value_clip = bool(target_value_clip)
        self.action_l2 = float(action_l2)
        self.random_action_prob = float(random_action_prob)
        super().__init__(*args, **kwargs)

    # ---------------------------------------------------------------- set-up
    def target_value_range(self) -> tuple[float, float]:
        """The clip range of this agent's target values (:func:`sparse_return_range`)."""
        return agent_target_value_range(self)

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        if not isinstance(self.action_space, spaces.Box):  # type: ignore[attr-defined]
            raise ValueError("the baselines recipe options need continuous (Box) actions")
        # hooks are not saved; _setup_model runs again on load, so they come back with the model
        if self.target_value_clip:
            self.critic_target.register_forward_hook(self._clip_target_values)  # type: ignore[attr-defined]
        # agents that form the actor loss themselves (the fast trainer's) add the penalty there
        if self.action_l2 > 0 and not getattr(self, "_actor_penalty_in_update", False):
            self.actor.register_forward_hook(self._penalise_actor_output)  # type: ignore[attr-defined]

    # ---------------------------------------------------------------- hooks
    def _clip_target_values(self, module: nn.Module, inputs: Any, outputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        low, high = self.target_value_range()
        return tuple(q_values.clamp(low, high) for q_values in outputs)

    def _penalise_actor_output(self, module: nn.Module, inputs: Any, actions: Tensor) -> Tensor:
        # only the actor-loss pass: training mode with a graph (rollouts and evaluation run under no_grad)
        if module.training and torch.is_grad_enabled() and actions.requires_grad:
            scale = 2.0 * self.action_l2 / actions.numel()
            detached = actions.detach()
            actions.register_hook(lambda grad: grad + scale * detached)
        return actions

    # ---------------------------------------------------------------- exploration
    def _sample_action(
        self, learning_starts: int, action_noise: Any = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)  # type: ignore[misc]
        if self.random_action_prob > 0 and self.num_timesteps >= learning_starts:  # type: ignore[attr-defined]
            replace = np.random.random_sample(n_envs) < self.random_action_prob
            if replace.any():
                uniform = np.random.uniform(-1.0, 1.0, size=buffer_action.shape).astype(buffer_action.dtype)
                buffer_action = np.where(replace[:, None], uniform, buffer_action)
                action = self.policy.unscale_action(buffer_action)  # type: ignore[attr-defined]
        return action, buffer_action
