"""The SB3 shell every fast agent shares: set-up, target freezing, the Polyak update, diagnostics.

:class:`FastTrainer` is a :class:`~reengage.agents.goal_gradient.GoalGradientMixin` stable-baselines3
off-policy algorithm; the per-algorithm shells (:mod:`.td3`, :mod:`.sac`, :mod:`.dqn`) add the networks
of their algorithm and a ``train()`` that calls the pure update functions.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from torch import Tensor, nn

from ..diagnostics import collect_goal_gradient_diagnostics
from ..goal_gradient import GoalGradientMixin, TermInputs
from ..her_replay import FastHerReplayBuffer
from ..targets import polyak_update
from .common import CriticLosses, GoalGradientTerm, freeze, memoise_training_mode

TRAINER_HINT = "use the stock SB3 path (config key trainer: sb3, or train.py --trainer sb3)"


class FastTrainer(GoalGradientMixin, OffPolicyAlgorithm):
    """What every fast agent shares. Place it first in the bases of a ReenGAGE agent class.

    The term is formed inside the fast update, so no optimiser hook is registered; the HER buffer is
    :class:`~reengage.agents.her_replay.FastHerReplayBuffer`; target networks are frozen (they receive no
    gradients, so one target forward serves the TD target and its goal gradient) and follow with one
    fused ``lerp`` over all parameters.
    """

    _term_in_optimizer_hook = False
    _fast_excluded = ["_fast_online_params", "_fast_target_params"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("replay_buffer_class") is HerReplayBuffer:
            kwargs["replay_buffer_class"] = FastHerReplayBuffer
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ per-algorithm pieces
    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """(online, target) module pairs: the targets are frozen and follow their online module."""
        raise NotImplementedError

    def _fast_unsupported(self) -> list[str]:
        """Settings this fast path does not implement (each a short phrase)."""
        return []

    # ------------------------------------------------------------------ set-up
    def _setup_model(self) -> None:
        super()._setup_model()
        unsupported = self._fast_unsupported()
        if unsupported:
            raise ValueError(f"the fast trainer does not support {', '.join(unsupported)}; {TRAINER_HINT}")
        online: list[Tensor] = []
        targets: list[Tensor] = []
        for source, target in self._fast_target_pairs():
            freeze(target)
            online += list(source.parameters())
            targets += list(target.parameters())
        self._fast_online_params = online
        self._fast_target_params = targets
        memoise_training_mode(self.policy)

    def _excluded_save_params(self) -> list[str]:
        return super()._excluded_save_params() + self._fast_excluded

    def _polyak_update(self) -> None:
        """``target <- (1 - tau) target + tau online`` for every parameter, in one fused call."""
        polyak_update(self._fast_online_params, self._fast_target_params, self.tau)

    # ------------------------------------------------------------------ the term
    def _losses_after_diagnostics(self, result: CriticLosses) -> tuple[Tensor, GoalGradientTerm | None]:
        """The TD loss and the term of one critic batch, after the goal-gradient diagnostics (when due) have seen
        the term's gradients and the critic's Q-values."""
        if result.term is not None:
            term = result.term
            self._goal_gradient_diagnostics(term.q_goal_grads, term.target_goal_grad, result.q_values, term.mask)
        return result.td_loss, result.term

    def _fast_term_inputs(self, batch: Any, reward_goal_grad: Tensor | None = None) -> TermInputs | None:
        """The term's inputs on this batch, or None when the term is off (alpha 0, not monitored)."""
        if not self.reengage_active:
            return None
        goal_dim = batch.observations[self.reengage_goal_key].shape[-1]
        return self.term_inputs(batch, self._dim_weights(goal_dim), reward_goal_grad=reward_goal_grad)

    def _goal_gradient_diagnostics(
        self, q_goal_grads: list[Tensor], target_goal_grad: Tensor, q_values: list[Tensor], mask: Tensor | None
    ) -> None:
        """Hook for optional diagnostics of the term's tensors; off by default.

        Called once per gradient step with the term's intermediate tensors when the term is computed.
        Implementations must not modify the tensors or the graph (detach before use).
        """

    def _log_diagnostics(self, batch: Any, update_index: int) -> None:
        """Every ``reengage_diagnostics_every`` gradient steps, the goal-gradient diagnostics on this batch.

        The SB3 path's function (:func:`~reengage.agents.diagnostics.collect_goal_gradient_diagnostics`,
        before the step, at alpha 0 too); it reads the agent only and restores the private noise
        generator, so training is unchanged. The parameter-gradient split between the TD loss and the
        term (``param_grad_*``) is logged on the SB3 path only: the fast step forms one combined gradient.
        """
        every = self.reengage_diagnostics_every
        if every <= 0 or update_index % every != 0:
            return
        values = collect_goal_gradient_diagnostics(self, batch, self._batch_context(batch))
        for key, value in values.items():
            self.logger.record_mean(f"reengage_diag/{key}", value)
