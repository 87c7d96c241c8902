"""The ReenGAGE term with no wasted network passes: the pieces the fast training path is built from.

:mod:`reengage.losses` stays the reference definition of the loss (Eq. 8.8, 8.9, G.10) and
:class:`~reengage.agents.goal_gradient.GoalGradientMixin` its plug-in form for stock SB3 agents. The
mixin cannot see inside SB3's ``train()``, so it recomputes what the TD loss already had: a second
target forward (with its own noise) and a second critic forward. Here the same quantities come from:

* **one target forward and one input-only backward.** The target networks are frozen
  (``requires_grad=False``), so the forward that produces the TD target value records a graph into
  the goal leaf only; ``autograd.grad(value.sum(), goal)`` then gives the target goal gradient (the
  total derivative through the target actor too) with no ``create_graph`` and no parameter gradients.
* **one critic forward, one ``create_graph`` gradient, one backward.** The critic heads are evaluated
  once on observations whose goal is a leaf; the TD loss and the goal-gradient loss are built from the
  same outputs and back-propagated together.

The loss arithmetic itself is :mod:`reengage.losses`, called on these tensors; only the way the
tensors are obtained differs, and ``tests/test_fast_path.py`` holds the result against the mixin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from reengage import losses

from .goal_gradient import ObsDict, with_leaf


def freeze(module: nn.Module) -> None:
    """Stop autograd from recording graphs into ``module``'s parameters (target networks)."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)


def target_value_and_goal_gradient(
    target_value: Callable[[ObsDict], Tensor],
    next_observations: ObsDict,
    goal_key: str,
    with_goal_gradient: bool,
) -> tuple[Tensor, Tensor | None]:
    """The bootstrapped value at s' (detached, (B, 1)) and, if asked, its total goal gradient (B, goal_dim).

    ``target_value`` maps observations to the algorithm's target value (target actor, noise, min over
    target critics, entropy...). Its networks should be frozen (:func:`freeze`) so that the one forward
    serves both the TD target and the goal gradient without a graph into their parameters.
    """
    if not with_goal_gradient:
        with torch.no_grad():
            return target_value(next_observations), None
    next_obs, next_goal = with_leaf(next_observations, goal_key)
    with torch.enable_grad():
        value = target_value(next_obs)
        (goal_gradient,) = torch.autograd.grad(value.sum(), next_goal)
    return value.detach(), goal_gradient


def critic_heads(
    features: Callable[[ObsDict], Tensor],
    q_networks: Sequence[nn.Module],
    observations: ObsDict,
    actions: Tensor,
    goal_key: str | None,
) -> tuple[list[Tensor], list[Tensor]]:
    """Q-values of each critic head, and (if ``goal_key``) one goal leaf per head that they depend on.

    Each head gets a leaf of its own so that one ``autograd.grad`` call returns the per-head goal
    gradients (a shared leaf would return their sum). Without ``goal_key`` the heads share one
    feature pass, as SB3's critic does.
    """
    if goal_key is None:
        shared = torch.cat([features(observations), actions], dim=1)
        return [q_net(shared) for q_net in q_networks], []
    values, leaves = [], []
    for q_net in q_networks:
        obs, goal = with_leaf(observations, goal_key)
        values.append(q_net(torch.cat([features(obs), actions], dim=1)))
        leaves.append(goal)
    return values, leaves


def critic_goal_gradients(q_values: Sequence[Tensor], goal_leaves: Sequence[Tensor]) -> list[Tensor]:
    """``grad_g Q_i`` of every head in one call, with a graph into the critic's parameters."""
    return list(torch.autograd.grad([q.sum() for q in q_values], list(goal_leaves), create_graph=True))


@dataclass
class GoalGradientTerm:
    """The unweighted term (summed over heads) and the tensors it was computed from.

    ``mask`` is the sparse mask ``1[R = c_low]`` as a (B, 1) column (with one-sided matching, times the
    share of critic heads whose row is kept), or ``None`` in dense mode. The
    intermediate tensors are kept for diagnostics (goal-gradient norms, cosine, value range), which a
    pure function can compute from them when enabled.
    """

    loss: Tensor
    q_goal_grads: list[Tensor]
    target_goal_grad: Tensor
    mask: Tensor | None

    @property
    def masked_fraction(self) -> Tensor:
        """Fraction of transitions whose gradient is not matched (0 in dense mode), as a 0-d tensor."""
        if self.mask is None:
            return torch.zeros((), device=self.loss.device)
        return 1.0 - self.mask.mean()


def goal_gradient_term(
    q_goal_grads: Sequence[Tensor],
    target_goal_grad: Tensor,
    rewards: Tensor,
    dones: Tensor,
    gamma: float,
    mode: str,
    c_low: float,
    dim_weights: Tensor | None = None,
    reward_goal_grad: Tensor | None = None,
    one_sided: bool = False,
) -> GoalGradientTerm:
    """Eq. 8.9 (``mode="sparse"``) or Eq. 8.8 (``"dense"``, needs ``reward_goal_grad``), summed over heads.

    ``one_sided``: the toolkit's one-sided matching (:func:`reengage.losses.weaker_than_target_rows`).
    """
    if mode == "dense":
        if reward_goal_grad is None:
            raise ValueError("the dense goal-gradient term needs reward_goal_grad")
        total = sum(
            losses.dense_goal_gradient_loss(
                q_grad, reward_goal_grad, target_goal_grad, dones, gamma, dim_weights, one_sided
            )
            for q_grad in q_goal_grads
        )
        mask = None
    else:
        total = sum(
            losses.sparse_goal_gradient_loss(
                q_grad, target_goal_grad, rewards, dones, gamma, c_low, dim_weights, one_sided
            )
            for q_grad in q_goal_grads
        )
        mask = losses.sparse_reward_mask(rewards.reshape(-1, 1), c_low)
        if one_sided:  # rows the one-sided rule drops are not matched either (mean over heads)
            target = gamma * (1.0 - dones.reshape(-1, 1).to(target_goal_grad.dtype)) * target_goal_grad
            mask = mask * losses.one_sided_kept_share(list(q_goal_grads), target, dim_weights)
    assert isinstance(total, Tensor)
    return GoalGradientTerm(total, list(q_goal_grads), target_goal_grad, mask)


# ---------------------------------------------------------------------- analytic form for ReLU MLPs
def relu_mlp_layers(network: nn.Module) -> list[nn.Linear] | None:
    """The linear layers of ``Linear, ReLU, ..., Linear`` (SB3's ``create_mlp``), or ``None`` if it is not one."""
    modules = list(network.children()) if isinstance(network, nn.Sequential) else []
    if not modules or len(modules) % 2 == 0:
        return None
    linears = modules[0::2]
    if not all(isinstance(m, nn.Linear) for m in linears) or not all(isinstance(m, nn.ReLU) for m in modules[1::2]):
        return None
    return linears  # type: ignore[return-value]


def relu_mlp_with_input_gradient(layers: Sequence[nn.Linear], inputs: Tensor, columns: slice) -> tuple[Tensor, Tensor]:
    """``q = MLP(x)`` and ``d q / d x[:, columns]`` for a ReLU MLP with one output, as a first-order graph.

    ``dq/dx = W_1^T diag(m_1) W_2^T ... diag(m_L) w_out`` with ``m_i = 1[z_i > 0]``: the ReLU masks are
    constants almost everywhere, so the gradient is a product of weight matrices and masks that
    ordinary (first-order) autograd differentiates in the weights; no double backward is needed, and
    the function is compilable. Equal to ``autograd.grad(q.sum(), x, create_graph=True)`` (tested).
    """
    masks = []
    hidden = inputs
    for layer in layers[:-1]:
        pre_activation = F.linear(hidden, layer.weight, layer.bias)
        mask = (pre_activation > 0).to(pre_activation.dtype)
        hidden = pre_activation * mask
        masks.append(mask)
    q_values = F.linear(hidden, layers[-1].weight, layers[-1].bias)
    gradient = masks[-1] * layers[-1].weight  # (B, H_L): the output layer has one row
    for index in range(len(layers) - 2, 0, -1):
        gradient = (gradient @ layers[index].weight) * masks[index - 1]
    return q_values, gradient @ layers[0].weight[:, columns]


def goal_columns(extractor: nn.Module, observation_space: Any, goal_key: str) -> slice | None:
    """Where the goal sits in the features of SB3's ``CombinedExtractor`` when it only flattens.

    ``None`` when the extractor is anything else (the analytic form then does not apply).
    """
    from stable_baselines3.common.preprocessing import get_flattened_obs_dim
    from stable_baselines3.common.torch_layers import CombinedExtractor

    if type(extractor) is not CombinedExtractor:
        return None
    offset = 0
    for key, sub in extractor.extractors.items():  # the order in which CombinedExtractor concatenates
        if not isinstance(sub, nn.Flatten):
            return None
        width = get_flattened_obs_dim(observation_space.spaces[key])
        if key == goal_key:
            return slice(offset, offset + width)
        offset += width
    return None
