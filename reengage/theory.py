"""The hypothesis class of Sec. 8.6.2 / App. G.1, and the two losses that train it.

Within the class, a model is the optimal Q-function and policy of the environment class written for an
estimate ``U~`` of the unknown rotation ``U`` (App. G.1):

* dense (Prop. 8.1)::

      Q(s, a, g) = g.(s + U~ a) / (1 - gamma) + gamma ||g|| / (1 - gamma)^2                      (G.1)
      pi(g)      = U~^T g / ||g||                                                                  (G.2)

* sparse (Prop. 8.2), ``s = (s1; s2)``::

      Q(s, a, g) = gamma g.(s1 + U~ a) / (1 - gamma^2) + gamma^3 ||g|| / (1 - gamma^2)^2   if s1 != 0
                   g.s2 / (1 - gamma^2) + gamma^2 ||g|| / (1 - gamma^2)^2                   if s1 == 0  (G.3)
      pi(g)      = U~^T g / ||g||                                                                  (G.4)

``Q`` and ``pi`` share ``U~``, so ``pi`` maximises ``Q`` and needs no training of its own. ``U~`` is a
smooth parametrisation of rotations, ``U~ = B exp(K - K^T)`` with a fixed base rotation ``B`` (the
initialisation) and trainable strictly-upper-triangular ``K``: ``d(d-1)/2`` parameters, the dimension of
SO(d).

The losses are computed on a fixed replay set:

* :func:`td_loss`: the standard DDPG critic loss (Eq. 8.4), ``(Q(s,a,g) - [R(s',g) + gamma Q'(s', pi'(g), g)])^2``;
  App. G.1 shows it equals ``(g.U~a - g.Ua)^2`` times ``1/(1-gamma)^2`` (dense) or ``gamma^2/(1-gamma^2)^2``
  (sparse, transitions with ``s1 != 0``; the others carry no ``U~``).
* :func:`goal_gradient_loss`: the goal-gradient term, computed by the toolkit's own
  :func:`reengage.losses.dense_goal_gradient_loss` (Eq. 8.8) or
  :func:`reengage.losses.sparse_goal_gradient_loss` (Eq. 8.9, ``c_low = 0``) from goal gradients taken
  by ``torch.autograd`` (``create_graph=True`` for the current critic; the total derivative through the
  target policy for the target). App. G.1: it equals ``||U~a - Ua||^2`` times ``1/(1-gamma)^2``
  (dense) or ``gamma^2/(1-gamma^2)^2`` (sparse), then divided by ``d`` because the toolkit's MSE is a
  mean over goal dimensions.
* :func:`reengage_loss`: ``td_loss + alpha * goal_gradient_loss``, the ReenGAGE critic loss.

The target critic ``Q' = Q_{U-bar}`` uses a detached copy of ``U~`` unless another rotation is given;
App. G.1 shows the target parameter cancels out of both losses, which the tests check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from reengage import losses

KINDS = ("dense", "sparse")
LOSSES = ("td", "reengage")

__all__ = [
    "KINDS",
    "LOSSES",
    "Transitions",
    "dense_q",
    "sparse_q",
    "optimal_action",
    "OrthogonalEstimate",
    "TheoryModel",
    "td_loss",
    "goal_gradient_loss",
    "reengage_loss",
    "sample_transitions",
    "haar_rotation",
    "rotation_error",
    "FitResult",
    "fit_rotation",
]


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")


def _check_gamma(gamma: float) -> None:
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma!r}")


# -- closed forms (App. G.1) -------------------------------------------------------------------------
def optimal_action(goals: Tensor, rotation: Tensor) -> Tensor:
    """Eq. G.2 / G.4: ``a* = U^T g / ||g||`` per row of ``goals`` (B, d)."""
    return (goals @ rotation) / goals.norm(dim=-1, keepdim=True)


def dense_q(states: Tensor, actions: Tensor, goals: Tensor, rotation: Tensor, gamma: float) -> Tensor:
    """Eq. G.1: ``g.(s + U a)/(1-gamma) + gamma ||g|| / (1-gamma)^2``, shape (B, 1)."""
    moved = states + actions @ rotation.T
    linear = (goals * moved).sum(dim=-1, keepdim=True) / (1.0 - gamma)
    return linear + gamma * goals.norm(dim=-1, keepdim=True) / (1.0 - gamma) ** 2


def sparse_q(states: Tensor, actions: Tensor, goals: Tensor, rotation: Tensor, gamma: float) -> Tensor:
    """Eq. G.3, the two branches selected per row by ``s1 != 0``; shape (B, 1)."""
    d = goals.shape[-1]
    s1, s2 = states[..., :d], states[..., d:]
    c = 1.0 - gamma**2
    norm = goals.norm(dim=-1, keepdim=True)
    acting = gamma * (goals * (s1 + actions @ rotation.T)).sum(dim=-1, keepdim=True) / c + gamma**3 * norm / c**2
    waiting = (goals * s2).sum(dim=-1, keepdim=True) / c + gamma**2 * norm / c**2
    return torch.where((s1 != 0).any(dim=-1, keepdim=True), acting, waiting)


# -- the learnable rotation --------------------------------------------------------------------------
def haar_rotation(d: int, generator: torch.Generator, dtype: torch.dtype = torch.float64) -> Tensor:
    """A Haar-random element of SO(d) drawn with a torch generator (QR with sign fix, then det +1)."""
    q, r = torch.linalg.qr(torch.randn(d, d, generator=generator, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


class OrthogonalEstimate(nn.Module):
    """``U~ = B exp(K - K^T)``: a rotation for every value of the ``d(d-1)/2`` parameters of ``K``.

    ``B`` (a buffer) is the starting rotation; the parameters start at zero, so ``U~ = B`` at first.
    :meth:`rebase` folds the current rotation into ``B`` and zeroes ``K``, keeping the exponential near
    the identity where it is well conditioned.
    """

    def __init__(self, base: Tensor) -> None:
        super().__init__()
        if base.dim() != 2 or base.shape[0] != base.shape[1]:
            raise ValueError(f"base must be a square matrix, got shape {tuple(base.shape)}")
        d = base.shape[0]
        self.register_buffer("base", base.clone())
        rows, cols = torch.triu_indices(d, d, offset=1)
        self.register_buffer("_rows", rows)
        self.register_buffer("_cols", cols)
        self.generator = nn.Parameter(torch.zeros(rows.numel(), dtype=base.dtype))

    @property
    def d(self) -> int:
        return self.base.shape[0]

    def forward(self) -> Tensor:
        k = torch.zeros(self.d, self.d, dtype=self.base.dtype, device=self.base.device)
        k = k.index_put((self._rows, self._cols), self.generator)
        return self.base @ torch.linalg.matrix_exp(k - k.T)

    def second_order_chart(self, generator: Tensor) -> Tensor:
        """``B (I + S + S^2/2)``, ``S = K - K^T``: equal to ``B exp(S)`` up to second order in ``K``.

        Value, gradient and Hessian in ``K`` at ``K = 0`` match those of the exponential map, at the
        cost of a few matrix products, so Newton steps are computed through it and then applied
        through the exact exponential.
        """
        k = torch.zeros(self.d, self.d, dtype=self.base.dtype, device=self.base.device)
        k = k.index_put((self._rows, self._cols), generator)
        s = k - k.T
        eye = torch.eye(self.d, dtype=self.base.dtype, device=self.base.device)
        return self.base @ (eye + s + s @ s / 2.0)

    @torch.no_grad()
    def rebase(self) -> None:
        self.base.copy_(self.forward())
        self.generator.zero_()


class TheoryModel(nn.Module):
    """Q and pi of App. G.1 (Eq. G.1-G.4) sharing one learnable rotation estimate ``U~``.

    Args:
        kind: ``"dense"`` (Prop. 8.1) or ``"sparse"`` (Prop. 8.2).
        base: starting rotation ``B`` (d, d); the model starts at ``U~ = B``.
        gamma: discount, in (0, 1).
    """

    def __init__(self, kind: str, base: Tensor, gamma: float = 0.9) -> None:
        super().__init__()
        _check_kind(kind)
        _check_gamma(gamma)
        self.kind = kind
        self.gamma = float(gamma)
        self.estimate = OrthogonalEstimate(base)
        # set only inside :meth:`evaluated_at`: the losses then see this (graph-carrying) matrix as U~
        self._override: Tensor | None = None

    @property
    def d(self) -> int:
        return self.estimate.d

    def rotation(self) -> Tensor:
        """The current estimate ``U~``."""
        return self.estimate() if self._override is None else self._override

    @contextmanager
    def evaluated_at(self, rotation: Tensor) -> Iterator[None]:
        """Within the block, every loss sees ``rotation`` as ``U~`` (used for second-order steps)."""
        self._override = rotation
        try:
            yield
        finally:
            self._override = None

    def q(self, states: Tensor, actions: Tensor, goals: Tensor, rotation: Tensor | None = None) -> Tensor:
        """Closed-form Q for ``rotation`` (default ``U~``), shape (B, 1)."""
        rotation = self.rotation() if rotation is None else rotation
        q_fn = dense_q if self.kind == "dense" else sparse_q
        return q_fn(states, actions, goals, rotation, self.gamma)

    def policy(self, goals: Tensor, rotation: Tensor | None = None) -> Tensor:
        """Closed-form greedy policy (it does not depend on the state)."""
        return optimal_action(goals, self.rotation() if rotation is None else rotation)

    def achieved(self, states: Tensor) -> Tensor:
        """The part of the state the reward reads: ``s`` (dense) or ``s1`` (sparse)."""
        return states if self.kind == "dense" else states[..., : self.d]

    def reward(self, next_states: Tensor, goals: Tensor) -> Tensor:
        """``R(s', g) = g . s'`` (dense) or ``g . s1'`` (sparse), shape (B, 1)."""
        return (self.achieved(next_states) * goals).sum(dim=-1, keepdim=True)

    def target_value(self, next_states: Tensor, goals: Tensor, dones: Tensor, target_rotation: Tensor) -> Tensor:
        """``R(s', g) + gamma (1 - done) Q_{U-bar}(s', pi_{U-bar}(g), g)``, shape (B, 1)."""
        bootstrap = self.q(next_states, self.policy(goals, target_rotation), goals, target_rotation)
        return self.reward(next_states, goals) + self.gamma * (1.0 - dones.reshape(-1, 1)) * bootstrap


# -- replay data -------------------------------------------------------------------------------------
@dataclass
class Transitions:
    """A replay set of ``(s, a, g, s', R(s', g), done)``, float64 tensors with a leading batch axis."""

    states: Tensor
    actions: Tensor
    goals: Tensor
    next_states: Tensor
    rewards: Tensor
    dones: Tensor

    def __len__(self) -> int:
        return self.states.shape[0]

    def subset(self, index: slice | Tensor) -> Transitions:
        """Rows ``index`` of every field (a prefix ``slice(0, n)`` gives nested replay sets)."""
        return Transitions(*(getattr(self, f)[index] for f in self.__dataclass_fields__))


def sample_transitions(env, n: int, seed: int) -> Transitions:
    """``n`` replay transitions in general position, stepped through ``env.dynamics`` (float64).

    States, goals ~ U[-1, 1]^d and actions uniform in the unit ball, independently per transition.
    For the sparse class, even rows start in the acting phase ``(s1; 0)`` and odd rows in the revealing
    phase ``(0; s2)``, so any prefix holds ``ceil(n/2)`` transitions that carry information about U
    (the half of the buffer App. G.1.2 calls wasted).
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    n, d = int(n), env.d
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5A]))
    goals = rng.uniform(-1.0, 1.0, size=(n, d))
    direction = rng.standard_normal((n, d))
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    actions = direction * rng.uniform(size=(n, 1)) ** (1.0 / d)
    points = rng.uniform(-1.0, 1.0, size=(n, d))
    if env.observation_space["observation"].shape[0] == d:
        states = points
    else:
        acting = (np.arange(n) % 2 == 0)[:, None]
        zeros = np.zeros_like(points)
        states = np.concatenate([np.where(acting, points, zeros), np.where(acting, zeros, 2.0 * points)], axis=-1)
    next_states = env.dynamics(states, actions)
    achieved = next_states[:, :d]
    rewards = np.sum(achieved * goals, axis=-1)
    fields = (states, actions, goals, next_states, rewards, np.zeros(n))
    return Transitions(*(torch.as_tensor(x, dtype=torch.float64) for x in fields))


# -- losses ------------------------------------------------------------------------------------------
def _target_rotation(model: TheoryModel, target_rotation: Tensor | None) -> Tensor:
    return model.rotation().detach() if target_rotation is None else target_rotation.detach()


def td_loss(
    model: TheoryModel, batch: Transitions, target_rotation: Tensor | None = None, reduction: str = "mean"
) -> Tensor:
    """Standard DDPG critic loss (Eq. 8.4): ``(Q(s,a,g) - y)^2`` with a fixed target ``y``.

    ``reduction="none"`` gives the per-tuple values, shape (B,).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    u_bar = _target_rotation(model, target_rotation)
    with torch.no_grad():
        target = model.target_value(batch.next_states, batch.goals, batch.dones, u_bar)
    per_tuple = (model.q(batch.states, batch.actions, batch.goals) - target).squeeze(-1) ** 2
    return per_tuple.mean() if reduction == "mean" else per_tuple


def goal_gradient_loss(model: TheoryModel, batch: Transitions, target_rotation: Tensor | None = None) -> Tensor:
    """The ReenGAGE goal-gradient term, by :mod:`reengage.losses` (Eq. 8.8 dense, Eq. 8.9 sparse).

    ``grad_g Q(s, a, g)`` keeps its graph (``create_graph=True``) so the loss reaches ``U~``; the target
    gradient is the total derivative in g of ``Q_{U-bar}(s', pi_{U-bar}(g), g)``, through the policy.
    """
    goals = batch.goals.detach().clone().requires_grad_(True)
    q = model.q(batch.states, batch.actions, goals)
    (q_goal_grad,) = torch.autograd.grad(q.sum(), goals, create_graph=True)

    u_bar = _target_rotation(model, target_rotation)
    target_goals = batch.goals.detach().clone().requires_grad_(True)
    next_q = model.q(batch.next_states, model.policy(target_goals, u_bar), target_goals, u_bar)
    (next_goal_grad,) = torch.autograd.grad(next_q.sum(), target_goals)

    if model.kind == "dense":
        reward_goals = batch.goals.detach().clone().requires_grad_(True)
        (reward_goal_grad,) = torch.autograd.grad(model.reward(batch.next_states, reward_goals).sum(), reward_goals)
        return losses.dense_goal_gradient_loss(q_goal_grad, reward_goal_grad, next_goal_grad, batch.dones, model.gamma)
    return losses.sparse_goal_gradient_loss(
        q_goal_grad, next_goal_grad, batch.rewards, batch.dones, model.gamma, c_low=0.0
    )


def reengage_loss(
    model: TheoryModel, batch: Transitions, alpha: float = 1.0, target_rotation: Tensor | None = None
) -> Tensor:
    """ReenGAGE critic loss: ``td_loss + alpha * goal_gradient_loss`` (Eq. 8.8 / 8.9)."""
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha!r}")
    return td_loss(model, batch, target_rotation) + alpha * goal_gradient_loss(model, batch, target_rotation)


# -- training and evaluation -------------------------------------------------------------------------
def rotation_error(estimate: Tensor, truth: Tensor, actions: Tensor) -> float:
    """``max_i ||(U~ - U) a_i||_2`` over held-out actions ``a_i`` (rows of ``actions``)."""
    return float(((actions @ (estimate - truth).T).norm(dim=-1)).max())


@dataclass
class FitResult:
    """Outcome of :func:`fit_rotation`: the best estimate over restarts and how it was reached."""

    rotation: Tensor
    loss: float
    converged: bool
    restarts_used: int
    restart_losses: list[float]


def _lbfgs(model: TheoryModel, objective: Callable[[TheoryModel], Tensor], max_iter: int) -> None:
    optimiser = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-300,
        tolerance_change=1e-300,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimiser.zero_grad()
        value = objective(model)
        value.backward()
        return value

    optimiser.step(closure)
    model.estimate.rebase()


def _newton(model: TheoryModel, objective: Callable[[TheoryModel], Tensor], max_iter: int, loss_tol: float) -> float:
    """Levenberg-damped Newton steps on the loss, exact Hessian by autograd in a second-order chart.

    Near an exact fit the Hessian is positive semi-definite and the steps converge quadratically even
    where the Jacobian is nearly singular (replay sets at the identifiability threshold), which is
    where first-order methods stall.
    """
    estimate = model.estimate
    value = float(objective(model).detach())
    damping = 1e-3
    for _ in range(max_iter):
        if value < loss_tol:
            break
        theta = torch.zeros_like(estimate.generator, requires_grad=True)
        with model.evaluated_at(estimate.second_order_chart(theta)):
            loss = objective(model)
        (grad,) = torch.autograd.grad(loss, theta, create_graph=True)
        eye = torch.eye(theta.numel(), dtype=theta.dtype)
        hessian = torch.autograd.grad(grad, theta, grad_outputs=eye, is_grads_batched=True)[0].detach()
        hessian = (hessian + hessian.T) / 2.0
        grad = grad.detach()
        eigenvalues, eigenvectors = torch.linalg.eigh(hessian)
        floor = max(0.0, -float(eigenvalues[0]))
        improved = False
        for _ in range(30):
            shift = floor + damping * max(1.0, float(eigenvalues[-1].abs()))
            step = -(eigenvectors @ ((eigenvectors.T @ grad) / (eigenvalues + shift)))
            with torch.no_grad():
                estimate.generator.copy_(step)
            trial = float(objective(model).detach())
            if trial < value:
                estimate.rebase()
                # the quadratic model predicts almost no further decrease while the loss is far from
                # zero: a stationary point with positive loss (a spurious local minimum), leave it
                predicted = -float(grad @ step) - 0.5 * float(step @ (hessian @ step))
                stalled = predicted < 1e-6 * trial and trial > math.sqrt(loss_tol)
                value, improved = trial, not stalled
                damping = max(damping / 10.0, 1e-15)
                break
            damping *= 10.0
        if not improved:
            with torch.no_grad():
                estimate.generator.zero_()
            break
    return value


def fit_rotation(
    kind: str,
    batch: Transitions,
    loss: str,
    *,
    gamma: float = 0.9,
    alpha: float = 1.0,
    restarts: int = 4,
    lbfgs_iter: int = 200,
    newton_iter: int = 40,
    loss_tol: float = 1e-20,
    seed: int = 0,
) -> FitResult:
    """Minimise ``loss`` ("td" or "reengage") over U~ from several random rotations.

    Each restart starts from a Haar-random rotation, runs ``lbfgs_iter`` L-BFGS iterations (cheap,
    gets close) and then up to ``newton_iter`` damped Newton steps (converges where L-BFGS stalls).
    It stops as soon as the loss falls below ``loss_tol``: the true U has loss 0 (to rounding), so
    such a loss is an exact fit. ``converged`` is False when no restart got there; a recovery failure
    with ``converged`` True is a failure of information (another rotation fits the data exactly), not
    of optimisation.
    """
    _check_kind(kind)
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if restarts < 1:
        raise ValueError(f"restarts must be >= 1, got {restarts!r}")
    d = batch.goals.shape[-1]
    generator = torch.Generator().manual_seed(int(seed))

    def objective(m: TheoryModel) -> Tensor:
        return td_loss(m, batch) if loss == "td" else reengage_loss(m, batch, alpha)

    best: tuple[float, Tensor] | None = None
    restart_losses: list[float] = []
    for _ in range(restarts):
        model = TheoryModel(kind, haar_rotation(d, generator), gamma)
        if lbfgs_iter > 0:
            _lbfgs(model, objective, lbfgs_iter)
        value = _newton(model, objective, newton_iter, loss_tol)
        restart_losses.append(value)
        if best is None or value < best[0]:
            best = (value, model.rotation().detach())
        if value < loss_tol:
            break
    assert best is not None
    return FitResult(best[1], best[0], best[0] < loss_tol, len(restart_losses), restart_losses)
