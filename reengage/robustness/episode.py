"""Episode certificates by policy smoothing (Kumar, Levine, Feizi, ICLR 2022).

The smoothed policy draws fresh private Gaussian noise at every step. Against an adaptive adversary that
perturbs the smoothed keys at every step with a total l2 budget ``B`` over the episode
(``sqrt(sum_t ||delta_t||^2) <= B``), for any event of the episode,
``P_adv[event] >= Phi(PhiInv(p_clean) - B / sigma)``.

- Success: p_clean is bounded below by a one-sided Clopper-Pearson bound from N clean smoothed episodes.
- Return: E[R] = R_min + integral over [R_min, R_max] of P(R > t) dt. The empirical survival function is
  lowered by the DKW band, pushed through the bound above at every threshold, and integrated. Negative returns
  are fine: the known return range [R_min, R_max] shifts the integral, and returns outside it are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from scipy.stats import norm
from tqdm import tqdm

from .smoothing import SmoothedPolicy
from .stats import check_alpha, clopper_pearson_lower, dkw_epsilon


def smoothed_event_lower_bound(p_lower: float | np.ndarray, budget: float | np.ndarray, sigma: float) -> np.ndarray:
    """Phi(PhiInv(p) - B / sigma): the adversarial lower bound on an event of clean probability >= p.

    Phi(PhiInv(0.9) - 1) = 0.61086.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    budget = np.asarray(budget, dtype=np.float64)
    if np.any(budget < 0):
        raise ValueError(f"budgets must be >= 0, got {budget.tolist()}")
    return norm.cdf(norm.ppf(np.asarray(p_lower, dtype=np.float64)) - budget / sigma)


def _check_budgets(budgets: Any) -> np.ndarray:
    b = np.atleast_1d(np.asarray(budgets, dtype=np.float64))
    if b.size == 0 or np.any(~np.isfinite(b)) or np.any(b < 0):
        raise ValueError(f"budgets must be finite numbers >= 0, got {budgets!r}")
    return b


def _check_gaussian(smoothed_or_sigma: Any) -> float:
    if isinstance(smoothed_or_sigma, SmoothedPolicy):
        if smoothed_or_sigma.config.kind != "gaussian":
            raise ValueError(
                "episode certificates (policy smoothing) need kind='gaussian' noise, got "
                f"{smoothed_or_sigma.config.kind!r}"
            )
        return float(smoothed_or_sigma.config.sigma)
    sigma = float(smoothed_or_sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {smoothed_or_sigma!r}")
    return sigma


@dataclass
class EpisodeCertificate:
    """Certified success probability and expected return against budgets ``budgets``."""

    budgets: np.ndarray
    sigma: float
    alpha: float
    n_episodes: int
    success_rate: float | None = None
    success_lower: np.ndarray | None = None
    mean_return: float | None = None
    return_range: tuple[float, float] | None = None
    return_lower: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        def arr(x: Any) -> Any:
            return None if x is None else np.asarray(x, dtype=float).tolist()

        return {
            "threat_model": "adaptive adversary, total l2 budget B over the episode on the smoothed keys",
            "budgets": arr(self.budgets),
            "sigma": self.sigma,
            "alpha": self.alpha,
            "n_episodes": self.n_episodes,
            "success_rate": self.success_rate,
            "certified_success": arr(self.success_lower),
            "mean_return": self.mean_return,
            "return_range": None if self.return_range is None else list(self.return_range),
            "certified_return": arr(self.return_lower),
        }


def certify_success(successes: np.ndarray, sigma: Any, budgets: Any, alpha: float = 0.05) -> np.ndarray:
    """Lower bounds on the adversarial success probability at each budget (prob. >= 1 - alpha)."""
    alpha = check_alpha(alpha)
    sigma = _check_gaussian(sigma)
    s = np.asarray(successes).astype(bool)
    p_lower = clopper_pearson_lower(int(s.sum()), int(s.size), alpha)
    return smoothed_event_lower_bound(p_lower, _check_budgets(budgets), sigma)


def certify_return(
    returns: np.ndarray, sigma: Any, budgets: Any, return_range: tuple[float, float], alpha: float = 0.05
) -> np.ndarray:
    """Lower bounds on the adversarial expected return at each budget (prob. >= 1 - alpha), via DKW."""
    alpha = check_alpha(alpha)
    sigma = _check_gaussian(sigma)
    budgets = _check_budgets(budgets)
    r_min, r_max = float(return_range[0]), float(return_range[1])
    if not (np.isfinite(r_min) and np.isfinite(r_max) and r_min < r_max):
        raise ValueError(f"return_range must be finite with min < max, got {return_range!r}")
    r = np.sort(np.asarray(returns, dtype=np.float64))
    if r.size == 0:
        raise ValueError("returns is empty")
    if r[0] < r_min - 1e-9 or r[-1] > r_max + 1e-9:
        raise ValueError(
            f"observed returns span [{r[0]}, {r[-1]}], outside the declared return_range {return_range}; the "
            "bound needs a known range"
        )
    n = r.size
    eps = dkw_epsilon(n, alpha)
    # thresholds t_0 = r_min < t_1 <= ... : on (t_{i-1}, t_i], P(R > t) >= P(R >= t_i) >= 1 - F_n(t_i^-) - eps
    thresholds = np.concatenate([[r_min], np.clip(r, r_min, r_max)])
    widths = np.diff(thresholds)
    # empirical P(R >= t_i) = (n - i) / n for the i-th sorted return (counting ties from the first)
    surv = 1.0 - np.searchsorted(r, thresholds[1:], side="left") / n
    p_low = np.clip(surv - eps, 0.0, 1.0)
    out = []
    for b in budgets:
        adv = smoothed_event_lower_bound(p_low, b, sigma)
        out.append(r_min + float(np.sum(widths * adv)))
    return np.array(out)


def run_episodes(
    policy: Any,
    env: gym.Env,
    n_episodes: int,
    seed: int = 0,
    success_key: str = "is_success",
    perturb: Callable[[dict, int], dict] | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``n_episodes`` independent episodes; returns (returns, successes).

    ``policy.predict(obs)`` is called each step (a :class:`SmoothedPolicy` draws fresh noise each call).
    Success is ``info[success_key]`` at the last step. ``perturb(obs, t)`` lets tests play an adversary.
    """
    if int(n_episodes) != n_episodes or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    returns, successes = np.zeros(n_episodes), np.zeros(n_episodes, dtype=bool)
    for i in tqdm(range(int(n_episodes)), disable=not progress, desc="episodes"):
        obs, info = env.reset(seed=int(seed) + i)
        total, t, done = 0.0, 0, False
        while not done:
            seen = perturb(obs, t) if perturb is not None else obs
            action, _ = policy.predict(seen, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            t += 1
            done = terminated or truncated
        returns[i] = total
        successes[i] = bool(info.get(success_key, False))
    return returns, successes


def certify_episodes(
    smoothed: SmoothedPolicy,
    env: gym.Env,
    n_episodes: int,
    budgets: Any,
    return_range: tuple[float, float] | None,
    alpha: float = 0.05,
    seed: int = 0,
    success_key: str = "is_success",
    progress: bool = False,
) -> EpisodeCertificate:
    """Run clean smoothed episodes and certify success and (with ``return_range``) return against each budget.

    The two statements are made with alpha / 2 each so that both hold together with probability >= 1 - alpha.
    """
    alpha = check_alpha(alpha)
    sigma = _check_gaussian(smoothed)
    budgets = _check_budgets(budgets)
    returns, successes = run_episodes(smoothed, env, n_episodes, seed, success_key, progress=progress)
    share = alpha / 2 if return_range is not None else alpha
    cert = EpisodeCertificate(
        budgets=budgets,
        sigma=sigma,
        alpha=alpha,
        n_episodes=int(n_episodes),
        success_rate=float(successes.mean()),
        success_lower=certify_success(successes, sigma, budgets, share),
        mean_return=float(returns.mean()),
    )
    if return_range is not None:
        cert.return_range = (float(return_range[0]), float(return_range[1]))
        cert.return_lower = certify_return(returns, sigma, budgets, return_range, share)
    return cert
