"""The ReenGAGE term, written once for every stable-baselines3 off-policy agent.

stable-baselines3 has no hook for an extra critic loss. Rather than copying each algorithm's
``train()``, :class:`GoalGradientMixin` adds the term through two small interceptions:

1. while ``train()`` runs, the replay buffer's ``sample`` is wrapped so the mixin sees the batch that
   the algorithm's own TD loss is about to use (and any per-batch context, such as SAC's entropy
   coefficient at that moment);
2. a step pre-hook on the critic optimiser runs after the TD loss's ``backward()`` and before
   ``step()``: it computes ``alpha * L_goal_gradient`` on the same batch and back-propagates it, so the
   gradients add up to those of ``L_TD + alpha * L_goal_gradient`` exactly as if the loss were summed.

Each algorithm then only says how its target value is formed (:meth:`_target_value`) and, when its
critic is not ``critic(obs, actions) -> tuple``, how the current Q-values are read
(:meth:`_current_q_heads`). Nothing here touches the global random number generators: the noise of
target actions is drawn from the mixin's own generator, so ``reengage_alpha=0`` trains exactly as the
stock algorithm, even with ``reengage_monitor=True`` computing the term at zero weight.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from reengage import losses

from . import vecnormalize_goal
from .diagnostics import collect_goal_gradient_diagnostics, critic_gradients, parameter_gradient_ratio
from .goal_autograd import ObsDict, critic_goal_gradients, target_value_and_goal_gradient, with_leaf
from .normalizer import goal_std

__all__ = ["GoalGradientMixin", "TermInputs", "bounds_goal_weights", "with_leaf", "ObsDict", "MODES", "DIM_WEIGHTINGS"]

MODES = ("sparse", "dense")
DIM_WEIGHTINGS = ("none", "normalised", "bounds")


@dataclass(frozen=True)
class TermInputs:
    """What the ReenGAGE term needs on one replay batch besides the goal gradients.

    Built by :meth:`GoalGradientMixin.term_inputs` from the agent's options; every training path passes
    it to :func:`reengage.losses.goal_gradient_residuals` through :meth:`residuals`.
    """

    gamma: float
    dones: Tensor
    rewards: Tensor | None  # R(s', g) for the sparse mask (Eq. 8.9); None in dense mode
    c_low: float
    reward_goal_grad: Tensor | None  # grad_g R(s', g) (Eq. 8.8); None in sparse mode
    dim_weights: Tensor | None  # App. G.4's per-dimension weights, None for all ones
    one_sided: bool

    def residuals(self, q_goal_grads: Sequence[Tensor], next_target_goal_grad: Tensor) -> losses.GoalGradientResiduals:
        """Eq. 8.9 / 8.8 residuals of the given critic heads' goal gradients against the target's."""
        return losses.goal_gradient_residuals(
            q_goal_grads,
            next_target_goal_grad,
            self.dones,
            self.gamma,
            rewards=self.rewards,
            c_low=self.c_low,
            reward_goal_grad=self.reward_goal_grad,
            dim_weights=self.dim_weights,
            one_sided=self.one_sided,
        )


class GoalGradientMixin:
    """Adds ``alpha * L_goal_gradient`` (Eq. 8.8 / 8.9) to an SB3 off-policy agent's critic loss.

    Subclasses place it before the SB3 class: ``class ReenGAGETD3(TD3GoalGradient, TD3)``.

    Args (in addition to the SB3 class's own):
        reengage_alpha: weight of the goal-gradient term; 0 disables it (the agent is then the stock one).
        reengage_mode: ``"sparse"`` (Eq. 8.9, mask on ``reward == c_low``) or ``"dense"`` (Eq. 8.8,
            adds ``grad_g R(s', g)`` from a differentiable reward).
        c_low: the low value of the sparse reward.
        reengage_goal_key: the observation key holding the goal (``"desired_goal"`` for HER envs).
        reengage_reward_fn: for dense mode, ``f(achieved_goal, desired_goal) -> (B, 1)`` in torch;
            by default the training env's ``differentiable_reward`` method.
        reengage_dim_weights: ``"none"``, ``"normalised"`` (App. G.4: sigma_i^2 from the goal statistics of
            a VecNormalize env or of the policy's normaliser), ``"bounds"`` (sigma_i^2 of a uniform goal over
            the declared bounds of the goal space, ``(high - low)^2 / 12``: makes alpha invariant to a
            rescaling of the goal) or a sequence of per-dimension weights; weights always apply to raw-goal
            errors. Under VecNormalize the term is computed in raw-goal units
            (see :mod:`reengage.agents.vecnormalize_goal`) and the sparse mask reads the raw reward.
        reengage_matching: ``"full"`` (Eq. 8.8 / 8.9: every unmasked row) or ``"one_sided"`` (only rows
            whose critic goal gradient is weaker than its target; not in the paper, see
            :func:`reengage.losses.weaker_than_target_rows` and docs/diagnosis.md).
        reengage_monitor: compute and log the term even when ``reengage_alpha`` is 0 (diagnostics for
            baselines; the term then enters with weight zero).
        reengage_seed: seed of the mixin's private generator for target-action noise
            (default: the agent's ``seed``, else 0).
        reengage_diagnostics_every: every this many gradient steps, log the term's diagnostics
            (:mod:`agents.diagnostics`) under ``reengage_diag/`` in TensorBoard; 0 (default) = never.
            They read the agent only, so they leave training unchanged, at alpha 0 too.
    """

    # class default: agents saved before the option existed load with the paper's matching
    reengage_matching: str = "full"
    # the term enters through the critic optimiser's step pre-hook; trainers that form the whole loss
    # themselves (reengage.agents.fast) set this to False and register no hook
    _term_in_optimizer_hook: bool = True

    def __init__(
        self,
        *args: Any,
        reengage_alpha: float = 0.2,
        reengage_mode: str = "sparse",
        c_low: float = -1.0,
        reengage_goal_key: str = "desired_goal",
        reengage_reward_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
        reengage_dim_weights: str | Sequence[float] = "none",
        reengage_matching: str = "full",
        reengage_monitor: bool = False,
        reengage_seed: int | None = None,
        reengage_diagnostics_every: int = 0,
        **kwargs: Any,
    ) -> None:
        if reengage_mode not in MODES:
            raise ValueError(f"reengage_mode must be one of {MODES}, got {reengage_mode!r}")
        if not np.isfinite(reengage_alpha) or reengage_alpha < 0:
            raise ValueError(f"reengage_alpha must be a finite number >= 0, got {reengage_alpha!r}")
        if isinstance(reengage_dim_weights, str) and reengage_dim_weights not in DIM_WEIGHTINGS:
            raise ValueError(
                f"reengage_dim_weights must be one of {DIM_WEIGHTINGS} or a sequence of weights, "
                f"got {reengage_dim_weights!r}"
            )
        if reengage_matching not in losses.MATCHINGS:
            raise ValueError(f"reengage_matching must be one of {losses.MATCHINGS}, got {reengage_matching!r}")
        if int(reengage_diagnostics_every) != reengage_diagnostics_every or reengage_diagnostics_every < 0:
            raise ValueError(
                f"reengage_diagnostics_every must be an integer >= 0 (0 = off), got {reengage_diagnostics_every!r}"
            )
        self.reengage_diagnostics_every = int(reengage_diagnostics_every)
        self.reengage_alpha = float(reengage_alpha)
        self.reengage_mode = reengage_mode
        self.c_low = float(c_low)
        self.reengage_goal_key = reengage_goal_key
        self.reengage_reward_fn = reengage_reward_fn
        self.reengage_dim_weights = reengage_dim_weights
        self.reengage_matching = reengage_matching
        self.reengage_monitor = bool(reengage_monitor)
        self.reengage_seed = reengage_seed
        self._captured: tuple[Any, dict[str, Any]] | None = None
        self._term_log: dict[str, list[float]] = {}
        super().__init__(*args, **kwargs)

    # ---------------------------------------------------------------- per-algorithm pieces
    def _critic_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser whose ``step()`` applies the TD loss (the critic's, for actor-critics)."""
        return self.critic.optimizer

    def _current_q_heads(self, obs: ObsDict, actions: Tensor) -> Sequence[Tensor]:
        """Q(s, a, g) of each critic head being trained, each (B, 1), differentiable in the goal."""
        return self.critic(obs, actions)

    def _batch_context(self, batch: Any) -> dict[str, Any]:
        """Whatever the target needs that may change between sampling and the critic step."""
        return {}

    def _target_value(self, next_obs: ObsDict, batch: Any, context: dict[str, Any]) -> Tensor:
        """The algorithm's bootstrapped target value at s' (without reward and discount), (B, 1).

        It must be a differentiable function of the goal in ``next_obs`` (through the target actor
        too), since its goal gradient is the target of the matching term.
        """
        raise NotImplementedError

    def _draw_normal(self, shape: Sequence[int]) -> Tensor:
        """Standard normal noise from the mixin's private generator, on the agent's device."""
        return torch.randn(tuple(shape), generator=self._reengage_generator).to(self.device)

    # ---------------------------------------------------------------- set-up
    @property
    def reengage_active(self) -> bool:
        return self.reengage_alpha > 0 or self.reengage_monitor or self.reengage_diagnostics_every > 0

    def _setup_model(self) -> None:
        super()._setup_model()
        seed = self.reengage_seed if self.reengage_seed is not None else (self.seed or 0)
        self._reengage_generator = torch.Generator().manual_seed(int(seed))
        policy = self.policy
        if getattr(policy, "share_features_extractor", False):
            raise ValueError(
                "ReenGAGE needs the goal to reach the critic with a graph; stable-baselines3 computes a "
                "shared features extractor without gradients. Pass policy_kwargs="
                "dict(share_features_extractor=False)."
            )
        if self._term_in_optimizer_hook:
            self._critic_optimizer().register_step_pre_hook(self._add_goal_gradient_term)

    def _excluded_save_params(self) -> list[str]:
        # the generator and the transient batch are not picklable state of the model
        return super()._excluded_save_params() + ["_reengage_generator", "_captured", "_term_log"]

    def get_reengage_rng_state(self) -> Tensor:
        return self._reengage_generator.get_state()

    def set_reengage_rng_state(self, state: Tensor) -> None:
        self._reengage_generator.set_state(state)

    # ---------------------------------------------------------------- training
    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        if not self.reengage_active:
            super().train(gradient_steps, batch_size)
            return
        buffer = self.replay_buffer
        sample = buffer.sample

        def sample_and_capture(*args: Any, **kwargs: Any) -> Any:
            batch = sample(*args, **kwargs)
            self._captured = (batch, self._batch_context(batch))
            return batch

        buffer.sample = sample_and_capture
        self._term_log = {"loss": [], "masked": []}
        try:
            super().train(gradient_steps, batch_size)
        finally:
            del buffer.sample  # back to the class's method; keeps the buffer picklable
            self._captured = None
        if self._term_log["loss"]:
            self.logger.record("train/reengage_loss", float(np.mean(self._term_log["loss"])))
            self.logger.record("train/reengage_masked_fraction", float(np.mean(self._term_log["masked"])))

    def _add_goal_gradient_term(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._captured is None:
            return
        batch, context = self._captured
        self._captured = None  # one term per sampled batch
        every = self.reengage_diagnostics_every
        diagnose = every > 0 and self._n_updates % every == 0
        diagnostics = collect_goal_gradient_diagnostics(self, batch, context) if diagnose else None  # type: ignore[arg-type]  # the host class has them
        td_gradients = critic_gradients(optimizer) if diagnose else None
        if self.reengage_alpha > 0 or self.reengage_monitor:
            with torch.enable_grad():
                loss, masked_fraction = self.goal_gradient_loss(batch, context)
                (self.reengage_alpha * loss).backward()
            self._term_log["loss"].append(loss.item())
            self._term_log["masked"].append(masked_fraction)
        if diagnostics is not None:
            diagnostics.update(parameter_gradient_ratio(td_gradients, critic_gradients(optimizer)))
            for key, value in diagnostics.items():
                self.logger.record_mean(f"reengage_diag/{key}", value)

    def target_goal_gradient(self, batch: Any, context: dict[str, Any] | None = None) -> Tensor:
        """Total derivative in g of the target value at s' (through the target actor too), (B, goal_dim)."""
        context = self._batch_context(batch) if context is None else context
        _, gradient = target_value_and_goal_gradient(
            lambda next_obs: self._target_value(next_obs, batch, context),
            batch.next_observations,
            self.reengage_goal_key,
            with_goal_gradient=True,
        )
        assert gradient is not None
        return gradient

    def critic_goal_gradients(self, observations: ObsDict, actions: Tensor) -> list[Tensor]:
        """``grad_g Q_i(s, a, g)`` of each trained critic head, with a graph into the critic's parameters."""
        obs, goal = with_leaf(observations, self.reengage_goal_key)
        heads = list(self._current_q_heads(obs, actions))
        return critic_goal_gradients(heads, [goal] * len(heads))

    def term_inputs(
        self,
        batch: Any,
        dim_weights: Tensor | None,
        rewards: Tensor | None = None,
        reward_goal_grad: Tensor | None = None,
    ) -> TermInputs:
        """The term's inputs on ``batch`` with this agent's options (mode, c_low, matching, gamma).

        ``rewards`` replaces the batch's rewards in the sparse mask (the raw reward under VecNormalize);
        ``reward_goal_grad`` (dense mode) is computed from the batch when not given.
        """
        dense = self.reengage_mode == "dense"
        if dense and reward_goal_grad is None:
            reward_goal_grad = self._reward_goal_gradient(batch)
        return TermInputs(
            gamma=self.gamma,
            dones=batch.dones,
            rewards=None if dense else (batch.rewards if rewards is None else rewards),
            c_low=self.c_low,
            reward_goal_grad=reward_goal_grad if dense else None,
            dim_weights=dim_weights,
            one_sided=self.reengage_matching == "one_sided",
        )

    def goal_gradient_loss(self, batch: Any, context: dict[str, Any] | None = None) -> tuple[Tensor, float]:
        """The unweighted goal-gradient term on a replay batch, summed over critic heads.

        Returns the loss (with a graph into the critic's parameters only) and the fraction of
        transitions whose gradient is not matched (sparse mask = 0, or a row the one-sided rule drops).
        """
        next_goal_grad = self.target_goal_gradient(batch, context)
        q_goal_grads = self.critic_goal_gradients(batch.observations, batch.actions)
        dim_weights = self._dim_weights(next_goal_grad.shape[-1])
        if vecnormalize_goal.normalises_goal(self._vec_normalize_env, self.reengage_goal_key):
            # the batch's goals are VecNormalize's: express the term in raw-goal units (chain rule)
            factor = vecnormalize_goal.raw_error_factor(self._vec_normalize_env, self.reengage_goal_key).to(self.device)
            next_goal_grad = next_goal_grad * self._unclipped(batch.next_observations)
            q_goal_grads = [q_grad * self._unclipped(batch.observations) for q_grad in q_goal_grads]
            dim_weights = factor if dim_weights is None else dim_weights * factor
        # the mask reads the raw reward (VecNormalize's norm_reward scales the sampled one)
        rewards = None
        if self.reengage_mode == "sparse":
            rewards = vecnormalize_goal.raw_sparse_rewards(self._vec_normalize_env, batch.rewards, self.c_low)
        term = self.term_inputs(batch, dim_weights, rewards=rewards).residuals(q_goal_grads, next_goal_grad)
        unmatched = 0.0 if term.matched is None else 1.0 - float(term.matched.mean())
        return losses.goal_gradient_loss(term), unmatched

    def _unclipped(self, observations: ObsDict) -> Tensor:
        """1 where VecNormalize left the goal unclipped, 0 where it clipped (no raw-goal gradient there)."""
        return vecnormalize_goal.unclipped_mask(self._vec_normalize_env, observations[self.reengage_goal_key])

    def _reward_goal_gradient(self, batch: Any) -> Tensor:
        reward_fn = self.reengage_reward_fn
        if reward_fn is None:
            if self.env is None:
                raise ValueError("dense ReenGAGE needs reengage_reward_fn or an env with differentiable_reward")
            reward_fn = _env_differentiable_reward(self.env)
        if self._vec_normalize_env is not None:
            raise ValueError("dense ReenGAGE with VecNormalize is not supported: the reward needs raw goals")
        achieved = batch.next_observations["achieved_goal"].detach()
        _, goal = with_leaf(batch.next_observations, self.reengage_goal_key)
        (grad,) = torch.autograd.grad(reward_fn(achieved, goal).sum(), goal)
        return grad

    def _dim_weights(self, goal_dim: int) -> Tensor | None:
        """Per-dimension weights of the raw-goal squared error (App. G.4: sigma_i^2), or None."""
        weights = self.reengage_dim_weights
        if isinstance(weights, str):
            if weights == "none":
                return None
            if weights == "bounds":
                return bounds_goal_weights(self.observation_space[self.reengage_goal_key]).to(self.device)
            if vecnormalize_goal.normalises_goal(self._vec_normalize_env, self.reengage_goal_key):
                sigma = vecnormalize_goal.goal_sigma(self._vec_normalize_env, self.reengage_goal_key)
            else:
                sigma = goal_std(self.policy, self.reengage_goal_key)
            if sigma is None:
                raise ValueError(
                    "reengage_dim_weights='normalised' needs goal statistics (App. G.4 weights by the running "
                    "goal variance): a VecNormalize training env or the policy's observation normaliser "
                    "(reengage.agents.normalizer); use 'none' or a sequence of weights"
                )
            return losses.normalised_goal_weights(sigma).to(self.device)
        tensor = torch.as_tensor(np.asarray(weights, dtype=np.float32), device=self.device)
        if tensor.shape != (goal_dim,):
            raise ValueError(f"reengage_dim_weights has {tensor.numel()} entries; the goal has {goal_dim} dimensions")
        return tensor


def bounds_goal_weights(goal_space: Any) -> Tensor:
    """App. G.4's sigma_i^2 for a goal spread uniformly over its declared Box bounds: ``(high - low)^2 / 12``."""
    low, high = np.asarray(goal_space.low, dtype=np.float64), np.asarray(goal_space.high, dtype=np.float64)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(
            "reengage_dim_weights='bounds' needs a goal space with finite bounds; use 'none' or 'normalised'"
        )
    return losses.normalised_goal_weights(torch.as_tensor((high - low) / np.sqrt(12.0), dtype=torch.float32))


def _env_differentiable_reward(vec_env: Any) -> Callable[[Tensor, Tensor], Tensor]:
    """Fetch ``differentiable_reward`` from the first sub-environment of a VecEnv."""
    try:
        unwrapped = vec_env.get_attr("unwrapped", indices=[0])[0]
        return unwrapped.differentiable_reward
    except AttributeError as error:
        raise ValueError(
            "reengage_mode='dense' needs a reward differentiable in the goal: pass reengage_reward_fn or use an "
            "environment with a differentiable_reward(achieved_goal, desired_goal) method, such as "
            "reengage/ContinuousSeekDense-v0"
        ) from error
