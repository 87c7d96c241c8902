"""ReenGAGE for DQN (App. G.2): goal gradients through a soft maximum over the discrete actions.

DQN's target ``R(s', g) + gamma * max_a Q'_a(s', g)`` (Eq. G.7) is not differentiable in the goal where
two actions tie (Eq. G.8), and elsewhere its automatic gradient ignores that the maximising action
changes with the goal. The goal-gradient term therefore uses the soft target of Eq. G.9,

    SoftQTarget(s', g) = R(s', g) + gamma * softmax(Q'(s', g) / tau) . Q'(s', g),

and matches ``grad_g Q_a(s, g)`` to ``gamma * grad_g`` of its bootstrapped part, masked as in the sparse
case (Eq. 8.9). Eq. G.10, the appendix's best variant and the default here, keeps DQN's Huber loss on
the hard max target for the value term; ``reengage_soft_value_target=True`` uses the soft target in the
value term too (Eq. G.11). ``reengage_tau=0`` is the hard max: its goal gradient is that of the
maximising action's value.

Binary goals. ``MultiBinary`` goals reach the network as ``int8`` bits. The gradient is taken with
respect to their float relaxation: the goal is cast to a float leaf with the same 0/1 values and
differentiated there (see :func:`~reengage.agents.goal_gradient.with_leaf`). The network is a smooth
function of that relaxation, so the derivative exists, but it describes the Q-function off the
lattice ``{0, 1}^n`` too; matching it is a regulariser on how Q changes between neighbouring goals,
not a statement about any reachable goal.

Gradient clipping. stable-baselines3's DQN clips the gradient norm (``max_grad_norm``) right before
``optimizer.step()``, which is before the mixin's step pre-hook adds the ReenGAGE gradient. To clip the
combined gradient ``grad(L_TD + alpha * L_goal)`` as one, this agent keeps the user's ``max_grad_norm``
in :attr:`reengage_max_grad_norm`, hands stable-baselines3 ``max_grad_norm = inf`` (its clip then
multiplies by exactly 1.0) and clips in its own step pre-hook, registered after the mixin's. With
``reengage_alpha = 0`` the clip happens on the same gradients in the same order as stock DQN's, so the
parameters stay bit-identical to stock DQN's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from stable_baselines3 import DQN
from torch import Tensor, nn

from reengage import losses

from .goal_gradient import GoalGradientMixin, ObsDict


class _SoftValueTargetNet(nn.Module):
    """Stands in for ``q_net_target`` inside ``DQN.train`` when the value term uses Eq. G.11.

    ``DQN.train`` computes its target as ``q_net_target(next_obs).max(dim=1)``. Returning the soft
    maximum as a single column makes that ``max`` the identity, so the stock ``train()`` forms
    ``R + gamma * (1 - done) * SoftMax[Q'/tau] . Q'`` without a copy of its code.
    """

    def __init__(self, target_net: nn.Module, tau: float) -> None:
        super().__init__()
        self.target_net = target_net
        self.tau = tau

    def forward(self, obs: ObsDict) -> Tensor:
        return losses.soft_max_target(self.target_net(obs), self.tau)


class DQNGoalGradient(GoalGradientMixin):
    """The DQN pieces of the ReenGAGE term; see the module docstring.

    Args (in addition to DQN's and :class:`GoalGradientMixin`'s):
        reengage_tau: temperature of the soft target (Eq. G.9); 0 is the hard max.
        reengage_soft_value_target: also use the soft target in the value (Huber) term (Eq. G.11).
        max_grad_norm: clip norm of the combined gradient (TD + alpha * goal-gradient term).
    """

    def __init__(
        self,
        *args: Any,
        reengage_tau: float = 0.5,
        reengage_soft_value_target: bool = False,
        max_grad_norm: float = 10.0,
        **kwargs: Any,
    ) -> None:
        if isinstance(reengage_tau, bool) or not math.isfinite(reengage_tau) or reengage_tau < 0:
            raise ValueError(f"reengage_tau must be a finite number >= 0 (0 = hard max), got {reengage_tau!r}")
        if isinstance(max_grad_norm, bool) or not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 (math.inf disables clipping), got {max_grad_norm!r}")
        n_steps = kwargs.get("n_steps", 1)
        if n_steps != 1:
            # the goal-gradient term discounts by gamma once; n-step returns would need gamma^n and the
            # goal gradient of the intermediate rewards
            raise ValueError(f"ReenGAGE-DQN supports n_steps=1 only, got n_steps={n_steps!r}")
        self.reengage_tau = float(reengage_tau)
        self.reengage_soft_value_target = bool(reengage_soft_value_target)
        self.reengage_max_grad_norm = float(max_grad_norm)
        # the appendix's grid is alpha in {0.5, 1.0}; the mixin's 0.2 default is ContinuousSeek's
        kwargs.setdefault("reengage_alpha", 0.5)
        # stable-baselines3's own clip (before the ReenGAGE gradient is added) becomes a multiply by 1.0
        super().__init__(*args, max_grad_norm=math.inf, **kwargs)

    # ---------------------------------------------------------------- per-algorithm pieces
    def _critic_optimizer(self) -> torch.optim.Optimizer:
        return self.policy.optimizer

    def _current_q_heads(self, obs: ObsDict, actions: Tensor) -> Sequence[Tensor]:
        return (torch.gather(self.policy.q_net(obs), dim=1, index=actions.long()),)

    def _target_value(self, next_obs: ObsDict, batch: Any, context: dict[str, Any]) -> Tensor:
        # the policy's network, not self.q_net_target (which train() may have swapped for Eq. G.11)
        return losses.soft_max_target(self.policy.q_net_target(next_obs), self.reengage_tau)

    # ---------------------------------------------------------------- set-up and training
    def _setup_model(self) -> None:
        super()._setup_model()  # registers the mixin's pre-hook first
        self._critic_optimizer().register_step_pre_hook(self._clip_combined_gradient)

    def _clip_combined_gradient(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        # same parameter list as stable-baselines3's clip, so alpha = 0 reproduces stock DQN bit for bit
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.reengage_max_grad_norm)

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if not self.reengage_soft_value_target or self.reengage_tau == 0:
            super().train(gradient_steps, batch_size)
            return
        target_net = self.q_net_target
        self.q_net_target = _SoftValueTargetNet(target_net, self.reengage_tau)
        try:
            super().train(gradient_steps, batch_size)
        finally:
            self.q_net_target = target_net


class ReenGAGEDQN(DQNGoalGradient, DQN):
    """stable-baselines3 DQN with the ReenGAGE goal-gradient term (App. G.2).

    Use with a ``Dict`` observation (``desired_goal``), usually with ``HerReplayBuffer``. Takes DQN's
    arguments, those of :class:`GoalGradientMixin` (``reengage_alpha``, ``c_low``, ``reengage_monitor``,
    ...) and ``reengage_tau``, ``reengage_soft_value_target`` (see :class:`DQNGoalGradient`).
    ``reengage_alpha=0`` with ``reengage_soft_value_target=False`` is stock DQN.
    """
