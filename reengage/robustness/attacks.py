"""Attacks that bracket certificates from above: what an adversary actually manages.

- :func:`pgd_l2`: projected gradient ascent on the smoothed keys within an l2 ball, against a differentiable
  surrogate of the smoothed policy (expectation over noise of the softmax of the scores, or of the actions).
- :func:`hamming_neighbours` / :func:`hamming_search`: every flip of at most ``radius`` binary features.

A found perturbation is judged by the smoothed decision itself, never by the surrogate. :func:`decision_changed`
is a point estimate (a majority of Monte Carlo draws) and may be wrong near a decision boundary; a state counts as
broken in a population bracket only through :func:`confirm_discrete_break` / :func:`confirm_continuous_break`,
statistical tests on fresh draws (the ``"test"`` noise stream) whose false-alarm probability is at most ``level``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from .smoothing import SmoothedPolicy
from .stats import bonferroni, bounded_mean_bounds, check_alpha, clopper_pearson_lower, clopper_pearson_upper


def _project_l2(delta: torch.Tensor, radius: float) -> torch.Tensor:
    norm = delta.norm()
    return delta if norm <= radius else delta * (radius / (norm + 1e-12))


def pgd_l2(
    smoothed: SmoothedPolicy,
    obs: Any,
    radius: float,
    reference: Any,
    steps: int = 20,
    n_noise: int = 64,
    step_size: float | None = None,
    temperature: float = 1.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """PGD (l2) on the concatenated smoothed features; returns the perturbation (d,) with norm <= radius.

    Discrete actions: minimise E_noise softmax(scores / T)[reference]. Continuous actions: maximise the largest
    per-dimension deviation (scaled by the action range) of E_noise action from ``reference``. Fresh noise each
    step (expectation over transformation).
    """
    if smoothed.config.kind != "gaussian":
        raise ValueError(f"pgd_l2 attacks Gaussian smoothing, got kind={smoothed.config.kind!r}")
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    rng = np.random.default_rng(0) if rng is None else rng
    obs = smoothed.as_dict(obs)
    dev = smoothed.adapter.device
    flat = torch.as_tensor(smoothed.flat_state(obs), dtype=torch.float32, device=dev)
    step_size = 2.5 * radius / steps if step_size is None else step_size
    adapter = smoothed.adapter
    # a random start inside the ball avoids a zero gradient at saturated outputs
    start = torch.as_tensor(rng.standard_normal(flat.shape), dtype=torch.float32, device=dev)
    delta = _project_l2(start * radius * 0.5, radius)
    space = adapter.action_space
    if not adapter.discrete:
        width = torch.as_tensor(space.high - space.low, dtype=torch.float32, device=dev).reshape(-1)
        ref = torch.as_tensor(np.asarray(reference), dtype=torch.float32, device=dev).reshape(-1)
    for _ in range(int(steps)):
        delta.requires_grad_(True)
        noise = torch.as_tensor(rng.standard_normal((n_noise, flat.numel())), dtype=torch.float32, device=dev)
        x = flat[None, :] + delta[None, :] + smoothed.config.sigma * noise
        batch = smoothed.batch_tensors(obs, x)
        out = adapter.forward(batch)
        if adapter.discrete:
            loss = -torch.softmax(out / temperature, dim=-1)[:, int(reference)].mean()
        else:
            mean_act = out.reshape(n_noise, -1).mean(dim=0)
            loss = (((mean_act - ref) / width).abs()).max()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            g = grad / (grad.norm() + 1e-12)
            delta = _project_l2(delta + step_size * g, radius)
    return delta.detach().cpu().numpy().astype(np.float64)


def decision_changed(
    smoothed: SmoothedPolicy, obs: Any, delta: np.ndarray, reference: Any, n: int = 2000, tolerance: float | None = None
) -> bool:
    """Does the (estimated) smoothed decision at obs + delta differ from ``reference``?

    Discrete: majority vote over ``n`` draws differs. Continuous: some dimension of the mean action moves by
    more than ``tolerance`` (action units).
    """
    obs = smoothed.as_dict(obs)
    moved = smoothed.with_state(obs, smoothed.flat_state(obs) + np.asarray(delta))
    if smoothed.discrete:
        return smoothed.smoothed_action(moved, n) != int(reference)
    if tolerance is None:
        raise ValueError("continuous actions need a tolerance to judge a change")
    return bool(np.max(np.abs(smoothed.smoothed_action(moved, n) - np.asarray(reference))) > tolerance)


def hamming_neighbours(flat: np.ndarray, radius: int) -> np.ndarray:
    """All binary vectors within Hamming distance ``radius`` of ``flat`` (flips 0 <-> 1), the original first."""
    flat = np.asarray(flat)
    if not np.all((flat == 0) | (flat == 1)):
        raise ValueError("hamming search needs binary (0/1) smoothed features")
    d = flat.size
    rows = [flat.copy()]
    for r in range(1, int(radius) + 1):
        for idx in itertools.combinations(range(d), r):
            v = flat.copy()
            v[list(idx)] = 1 - v[list(idx)]
            rows.append(v)
    return np.array(rows, dtype=np.float64)


def hamming_search(smoothed: SmoothedPolicy, obs: Any, radius: int, n: int = 2000) -> tuple[bool, np.ndarray | None]:
    """Exhaustive search of every flip of at most ``radius`` smoothed features for a change of the smoothed action.

    Deterministic ablation evaluates the smoothed action exactly (all group votes of all candidates in batches);
    otherwise each candidate is judged by a majority over ``n`` draws. Returns (found, flipped vector or None).
    """
    obs = smoothed.as_dict(obs)
    flat = smoothed.flat_state(obs)
    cands = hamming_neighbours(flat, radius)
    if smoothed.config.kind == "deterministic_ablation":
        g = smoothed.config.groups
        keep = smoothed._groups[None, :] == np.arange(g)[:, None]  # (g, d)
        decisions = np.empty(cands.shape[0], dtype=np.int64)
        chunk = max(1, smoothed.batch_size // g)
        for start in range(0, cands.shape[0], chunk):
            c = cands[start : start + chunk]
            rows = np.where(keep[None], c[:, None, :], smoothed.config.null_value).reshape(-1, smoothed.d)
            acts = smoothed.base_outputs_flat(obs, rows).reshape(c.shape[0], g)
            votes = (acts[:, :, None] == np.arange(smoothed.n_actions)[None, None, :]).sum(axis=1)
            decisions[start : start + chunk] = votes.argmax(axis=1)  # ties to the lowest index, as certified
        changed = np.nonzero(decisions != decisions[0])[0]
        return (True, cands[changed[0]]) if changed.size else (False, None)
    reference = smoothed.smoothed_action(obs, n)
    for c in cands[1:]:
        if smoothed.smoothed_action(smoothed.with_state(obs, c), n) != reference:
            return True, c
    return False, None


# ------------------------------------------------------------------------------------------------
# confirmation tests: a break is claimed only with statistical confidence


def discrete_break_from_counts(
    clean_counts: np.ndarray, moved_counts: np.ndarray, reference: int, level: float
) -> bool:
    """Do the vote counts show, with probability of a false claim <= ``level``, that g(x) = reference != g(x')?

    ``clean_counts`` and ``moved_counts`` are the votes of two independent fresh draws at x and at x'. Half of
    ``level`` goes to each point; at each point K one-sided Clopper-Pearson bounds (one per action) hold together
    (Bonferroni, ``level / (2K)`` each). g(x) = A is shown when A's lower bound exceeds every other action's upper
    bound; g(x') != A when some action's lower bound exceeds A's upper bound. A robust state has g(x) = g(x'), so
    claiming both is false for it with probability <= ``level`` (whichever claim is wrong, its bounds failed).
    """
    level = check_alpha(level, "level")
    clean, moved = np.asarray(clean_counts, dtype=np.int64), np.asarray(moved_counts, dtype=np.int64)
    k = clean.size
    per = bonferroni(level / 2.0, k)
    a = int(reference)
    n_clean, n_moved = int(clean.sum()), int(moved.sum())
    others = [c for c in range(k) if c != a]
    clean_ok = clopper_pearson_lower(int(clean[a]), n_clean, per) > max(
        clopper_pearson_upper(int(clean[c]), n_clean, per) for c in others
    )
    if not clean_ok:
        return False
    a_upper = clopper_pearson_upper(int(moved[a]), n_moved, per)
    return any(clopper_pearson_lower(int(moved[c]), n_moved, per) > a_upper for c in others)


def confirm_discrete_break(
    smoothed: SmoothedPolicy, obs: Any, moved_flat: np.ndarray, reference: int, n: int, level: float
) -> bool:
    """Fresh ``n`` draws at x and at the attack point (smoothed features ``moved_flat``): see
    :func:`discrete_break_from_counts`."""
    obs = smoothed.as_dict(obs)
    clean = smoothed.counts(smoothed.sample(obs, n, stream="test"))
    moved = smoothed.counts(smoothed.sample(smoothed.with_state(obs, np.asarray(moved_flat)), n, stream="test"))
    return discrete_break_from_counts(clean, moved, reference, level)


def confirm_continuous_break(
    smoothed: SmoothedPolicy,
    obs: Any,
    moved_flat: np.ndarray,
    center: np.ndarray,
    tolerance: float,
    n: int,
    level: float,
) -> bool:
    """Is some dimension of the smoothed (mean) action at the attack point outside ``center +- tolerance``,
    shown by bounds (randomised rounding + Clopper-Pearson, 2m bounds at ``level / (2m)``) on fresh draws?"""
    level = check_alpha(level, "level")
    space = smoothed.adapter.action_space
    low, high = space.low.astype(np.float64).reshape(-1), space.high.astype(np.float64).reshape(-1)
    width = high - low
    obs = smoothed.as_dict(obs)
    batch = smoothed.sample(smoothed.with_state(obs, np.asarray(moved_flat)), n, stream="test")
    h = np.clip((batch.outputs.reshape(n, -1) - low) / width, 0.0, 1.0)
    h_lo, h_hi = bounded_mean_bounds(
        h, bonferroni(level, 2 * low.size), method="bernoulli_cp", rng=smoothed.stream("test")
    )
    lo, hi = low + width * h_lo, low + width * h_hi
    center = np.asarray(center, dtype=np.float64).reshape(-1)
    return bool(np.any(lo > center + tolerance) or np.any(hi < center - tolerance))
