"""The fast TD3 and DDPG agents: a thin SB3 shell around pure update functions.

With plain ReLU MLPs on flattened boxes (SB3's ``MultiInputPolicy`` and ``MlpPolicy``) each gradient step
is written by hand (:mod:`.td3_manual`: no autograd graph); otherwise, or with ``manual_update = False``,
it is the autograd form (:func:`.common.actor_critic_losses`). Both form TD3's target with
:func:`reengage.agents.targets.td3_target_value` and the term with
:func:`reengage.losses.goal_gradient_residuals`, and both draw TD3's target-policy noise from torch's
global generator as SB3 does, the term reusing the TD target's sample (one shared target forward).

The baselines' robotics recipe (:mod:`reengage.agents.recipe`, :mod:`reengage.agents.normalizer`, mixed in
by :func:`reengage.agents.compose.extended_agent_class`) runs on both forms:

* observation normaliser: the autograd form differentiates through the networks' extractors, the
  hand-written form applies the normaliser's chain rule itself; either way the goal gradients are raw-goal
  gradients, as on the SB3 path;
* ``target_value_clip``: the autograd form calls the target critic, whose forward hook clips; the
  hand-written form clips each target head itself (:func:`.td3_manual.target_and_goal_gradient`);
* ``action_l2``: both forms add ``action_l2 * mean(pi(s)^2)`` to the actor loss they form (the SB3 path's
  gradient hook is not registered on these agents: the fast step's actor pass runs in evaluation mode);
* ``random_action_prob``: the mixin's ``_sample_action``, as on the SB3 path.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import TD3
from torch import Tensor, nn

from reengage import losses

from ..goal_gradient import TermInputs
from ..recipe import agent_target_value_range
from ..td3 import ReenGAGEDDPG, ReenGAGETD3, TD3GoalGradient
from . import td3_manual
from .common import GoalGradientTerm, Logged, actor_critic_losses, critic_update, prepare_optimisers, record_losses
from .trainer import FastTrainer


class FastTD3Trainer(FastTrainer, TD3GoalGradient, TD3):
    """Fast ``train()`` for TD3 and DDPG (TD3 with one critic, ``policy_delay=1`` and no target noise).

    The concrete agents put the ReenGAGE class of their algorithm after this one
    (``FastReenGAGEDDPG(FastTD3Trainer, ReenGAGEDDPG)``), so SB3's DDPG sets DDPG's defaults.
    """

    #: the whole gradient step written by hand (:mod:`.td3_manual`, no autograd graph) when every network
    #: is a plain ReLU MLP on flattened boxes; otherwise (or False) the autograd form
    manual_update: bool = True
    _fast_excluded = [*FastTrainer._fast_excluded, "_manual_plan_cache"]
    #: read by :class:`~reengage.agents.recipe.BaselinesRecipeMixin`: the action L2 penalty is part of the
    #: actor loss formed here, so the mixin registers no gradient hook for it
    _actor_penalty_in_update = True

    # ------------------------------------------------------------------ the recipe's options
    def _value_range(self) -> tuple[float, float] | None:
        """The target clip's range when ``target_value_clip`` is on (the recipe mixin), else None."""
        if not getattr(self, "target_value_clip", False):
            return None
        return agent_target_value_range(self)

    def _action_l2(self) -> float:
        """The actor loss's action L2 weight (the recipe mixin's ``action_l2``; 0 without it)."""
        return float(getattr(self, "action_l2", 0.0))

    def _fast_target_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.critic, self.critic_target), (self.actor, self.actor_target)]

    def _fast_unsupported(self) -> list[str]:
        unsupported = []
        if not hasattr(self.critic, "q_networks"):
            unsupported.append(f"a critic without SB3's q_networks ({type(self.critic).__name__})")
        if self.critic_batch_norm_stats or self.actor_batch_norm_stats:
            unsupported.append("batch-norm statistics in the actor or critic")
        if self.policy.share_features_extractor:
            unsupported.append("share_features_extractor=True")
        return unsupported

    # ------------------------------------------------------------------ autograd form
    def _target_noise(self, batch: Any) -> Tensor | None:
        """TD3's target-policy noise sample, drawn from torch's global generator as SB3 does (None at std 0)."""
        if self.target_policy_noise <= 0:
            return None
        return batch.actions.clone().normal_(0, self.target_policy_noise)

    def critic_loss(self, batch: Any) -> tuple[Tensor, GoalGradientTerm | None]:
        """The TD loss of TD3/DDPG and (when active) the unweighted ReenGAGE term on one batch (autograd form)."""
        noise = self._target_noise(batch)
        result = actor_critic_losses(
            self.critic,
            lambda obs: self.td3_target(obs, noise),
            batch,
            self.gamma,
            1.0,
            self.reengage_goal_key,
            self._fast_term_inputs(batch),
        )
        return self._losses_after_diagnostics(result)

    # ------------------------------------------------------------------ hand-written form
    def _manual_plan(self) -> td3_manual.ManualTD3Plan | None:
        """The hand-written step's plan for this policy (cached per policy object), or None to use autograd."""
        if not self.manual_update:
            return None
        goal_key = self.reengage_goal_key if self.reengage_active else None
        cached = getattr(self, "_manual_plan_cache", None)
        if cached is None or cached[0] is not self.policy or cached[1] != goal_key:
            plan = td3_manual.manual_td3_plan(self.policy, self.observation_space, goal_key)
            if plan is not None and goal_key is not None and plan.goal_columns is None:
                plan = None  # the term needs the goal's columns
            cached = self._manual_plan_cache = (self.policy, goal_key, plan)
        return cached[2]

    def _manual_term(
        self, batch: Any, q_goal_grads: list[Tensor], target_goal_grad: Tensor, reward_goal_grad: Tensor | None
    ) -> tuple[Tensor, list[Tensor], Tensor | None]:
        """The term as :func:`.td3_manual.critic_gradients` forms it: loss, per-head residuals, matched share."""
        weights = self._dim_weights(target_goal_grad.shape[-1])
        inputs = self.term_inputs(batch, weights, reward_goal_grad=reward_goal_grad)
        term = inputs.residuals(q_goal_grads, target_goal_grad)
        return losses.goal_gradient_loss(term), term.residuals, term.matched

    def _manual_critic_step(self, plan: td3_manual.ManualTD3Plan, batch: Any, logged: Logged) -> Tensor:
        """One critic step written by hand (:mod:`.td3_manual`); returns the batch's features for the actor."""
        noise = self._target_noise(batch)
        if noise is not None and self.target_noise_clip == 0:
            # DDPG: SB3 draws the noise and clips it to exactly zero; the draw above advances torch's
            # generator alike, and the sample is left out
            noise = None
        # (before the hand-written step's no_grad: the dense term's grad_g R needs autograd)
        term_inputs: TermInputs | None = self._fast_term_inputs(batch)
        target_q, target_goal_grad = td3_manual.target_and_goal_gradient(
            plan,
            batch,
            self.gamma,
            noise,
            self.target_noise_clip,
            term_inputs is not None,
            self.reengage_hold_target_action,
            self._value_range(),
        )
        step = td3_manual.critic_gradients(plan, batch, target_q, target_goal_grad, term_inputs, self.reengage_alpha)
        if step.term_loss is not None:
            assert target_goal_grad is not None
            self._goal_gradient_diagnostics(step.q_goal_grads, target_goal_grad, step.q_values, step.matched)
        self.critic.optimizer.step()
        logged["train/critic_loss"].append(step.td_loss)
        if step.term_loss is not None:
            logged["train/reengage_loss"].append(step.term_loss)
            unmatched = 1.0 - step.matched.mean() if step.matched is not None else step.td_loss.new_zeros(())
            logged["train/reengage_masked_fraction"].append(unmatched)
        return step.features

    def _manual_actor_step(self, plan: td3_manual.ManualTD3Plan, batch: Any, features: Tensor) -> Tensor:
        """The hand-written actor gradients (``features``: the critic's input on the batch); returns the loss."""
        actor_features = None
        if plan.normalisers is not None:  # the actor reads its own normaliser's output
            actor_features = plan.features(plan.normalisers.actor, batch.observations)
        return td3_manual.actor_gradients(plan, features, actor_features, self._action_l2())

    def _actor_loss(self, observations: Any) -> tuple[Tensor, Tensor]:
        """The autograd form's actor loss ``-mean Q_1(s, pi(s)) + action_l2 * mean(pi(s)^2)`` and its ``-Q`` part."""
        actions = self.actor(observations)
        q_part = -self.critic.q1_forward(observations, actions).mean()
        l2 = self._action_l2()
        return (q_part + l2 * actions.pow(2).mean() if l2 > 0 else q_part), q_part

    # ------------------------------------------------------------------ the loop
    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        optimisers = [self.actor.optimizer, self.critic.optimizer]
        prepare_optimisers(optimisers)
        self._update_learning_rate(optimisers)
        actor_params = list(self.actor.parameters())
        logged: Logged = {
            "train/critic_loss": [],
            "train/actor_loss": [],
            "train/reengage_loss": [],
            "train/reengage_masked_fraction": [],
        }
        plan = self._manual_plan()
        buffer = self.replay_buffer
        assert buffer is not None
        for _ in range(gradient_steps):
            self._n_updates += 1
            batch = buffer.sample(batch_size, env=self._vec_normalize_env)
            self._log_diagnostics(batch, self._n_updates)
            update_actor = self._n_updates % self.policy_delay == 0
            if plan is not None:
                # (the critic's input on the batch is the actor's too unless a normaliser sits in front)
                features = self._manual_critic_step(plan, batch, logged)
                if update_actor:
                    logged["train/actor_loss"].append(self._manual_actor_step(plan, batch, features))
                    self.actor.optimizer.step()
                    self._polyak_update()
                continue
            critic_update(self.critic.optimizer, *self.critic_loss(batch), self.reengage_alpha, logged)
            if update_actor:
                actor_loss, q_part = self._actor_loss(batch.observations)
                self.actor.optimizer.zero_grad()
                # into the actor only: the critic's weight gradients would be thrown away
                actor_loss.backward(inputs=actor_params)
                self.actor.optimizer.step()
                # SB3 logs -Q (its penalty is a gradient hook): the same quantity on both paths
                logged["train/actor_loss"].append(q_part.detach())
                self._polyak_update()
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        record_losses(self.logger, logged)


class FastReenGAGEDDPG(FastTD3Trainer, ReenGAGEDDPG):
    """:class:`~reengage.agents.ReenGAGEDDPG` with the fast ``train()`` (see :mod:`reengage.agents.fast`)."""


class FastReenGAGETD3(FastTD3Trainer, ReenGAGETD3):
    """:class:`~reengage.agents.ReenGAGETD3` with the fast ``train()`` (see :mod:`reengage.agents.fast`)."""
