"""Population estimates (seed 002): which fraction of the states the policy meets is certified at radius eps.

Sampling: N independent episodes of the deployed (smoothed) policy, one uniformly chosen visited state from each,
so the N indicators are i.i.d. Hoeffding (N >= ln(2/eta) / (2 eps^2)) and Clopper-Pearson give (1 - eta)
intervals on P(certified). Per-state certificates fail with probability <= alpha each, so the fraction of states
that are truly robust is >= P(certified) - alpha. An attack brackets it from above: a state counts as broken only
when a statistical test on fresh draws shows that the smoothed decision at the attack point differs (false alarm
probability <= ``attack_test_level`` per state, see :mod:`.attacks`), and the bracket's failure probability is the
Clopper-Pearson share plus the union bound ``N * attack_test_level`` over the states: together ``eta``.

The states are those met by the deployed smoothed policy (:meth:`SmoothedPolicy.predict`): policy smoothing (one
fresh draw per step) for Gaussian noise and randomized ablation, the exact majority vote (the certified policy)
for deterministic ablation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from .stats import check_alpha, clopper_pearson_interval, clopper_pearson_upper, hoeffding_epsilon


def sample_states(
    policy: Any, env: gym.Env, n_episodes: int, seed: int = 0, progress: bool = False
) -> tuple[list[dict], np.ndarray]:
    """One uniformly chosen visited state from each of ``n_episodes`` independent episodes (episode ids returned)."""
    if int(n_episodes) != n_episodes or n_episodes < 1:
        raise ValueError(f"n_episodes must be a positive integer, got {n_episodes!r}")
    rng = np.random.default_rng(seed)
    states = []
    for i in tqdm(range(int(n_episodes)), disable=not progress, desc="states"):
        obs, _ = env.reset(seed=int(seed) + 100_000 + i)
        visited, done = [obs], False
        while not done:
            action, _ = policy.predict(obs, deterministic=True)
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            if not done:
                visited.append(obs)
        states.append(visited[int(rng.integers(len(visited)))])
    return states, np.arange(int(n_episodes))


@dataclass
class PopulationEstimate:
    """PAC statement about the certified fraction at radius ``eps``, with the attack's upper bracket."""

    eps: float
    n: int
    eta: float
    per_state_alpha: float
    certified_fraction: float
    hoeffding: tuple[float, float]
    clopper_pearson: tuple[float, float]
    robust_lower: float
    attack_robust_upper: float | None = None
    attack_success_fraction: float | None = None
    attack_bracket: str | None = None
    attack_test_level: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def population_estimate(
    certified: np.ndarray,
    eps: float,
    eta: float = 0.05,
    per_state_alpha: float = 0.0,
    episode_ids: np.ndarray | None = None,
    attacked: np.ndarray | None = None,
    attack_exact: bool = False,
) -> PopulationEstimate:
    """Intervals on the certified fraction (each with probability >= 1 - eta) and the attack bracket.

    ``robust_lower`` = CP lower end minus ``per_state_alpha``: a lower bound on the fraction truly robust (only
    the CP end is used, so that picking the better of two intervals does not cost a union bound).
    ``attacked[i]`` is True where an attack changed the smoothed decision. With ``attack_exact`` (the decisions
    were computed exactly, as for deterministic ablation) the (1 - eta) CP upper bound of the non-attacked
    fraction bounds the robust fraction. Otherwise each flag must come from a confirmation test at level
    ``eta / (2 N)`` (:func:`attack_test_level`) and the CP bound uses ``eta / 2``: by the union bound the
    bracket fails with probability <= eta. Duplicate ``episode_ids`` are refused: the samples must come from
    independent episodes.
    """
    eta = check_alpha(eta, "eta")
    c = np.asarray(certified, dtype=bool)
    n = c.size
    if n == 0:
        raise ValueError("no states")
    if episode_ids is not None and len(np.unique(episode_ids)) != len(episode_ids):
        raise ValueError(
            "several states come from the same episode; population claims need one state per independent episode"
        )
    if not (0.0 <= per_state_alpha < 1.0):
        raise ValueError(f"per_state_alpha must lie in [0, 1), got {per_state_alpha!r}")
    frac = float(c.mean())
    h = hoeffding_epsilon(n, eta)
    cp = clopper_pearson_interval(int(c.sum()), n, eta)
    est = PopulationEstimate(
        eps=float(eps),
        n=n,
        eta=eta,
        per_state_alpha=float(per_state_alpha),
        certified_fraction=frac,
        hoeffding=(max(0.0, frac - h), min(1.0, frac + h)),
        clopper_pearson=cp,
        robust_lower=max(0.0, cp[0] - per_state_alpha),
    )
    if attacked is not None:
        a = np.asarray(attacked, dtype=bool)
        if a.size != n:
            raise ValueError(f"attacked has {a.size} entries, certified has {n}")
        if np.any(a & c) and per_state_alpha == 0.0:
            raise ValueError("an attack broke an exact certificate: the certificate code is wrong")
        est.attack_success_fraction = float(a.mean())
        cp_eta = eta if attack_exact else eta / 2.0
        est.attack_robust_upper = clopper_pearson_upper(int((~a).sum()), n, cp_eta)
        est.attack_bracket = f"upper bound on the robust fraction at confidence {1 - eta:g}: " + (
            "exact attack decisions, Clopper-Pearson at eta"
            if attack_exact
            else f"Clopper-Pearson at eta/2 = {cp_eta:g} plus {n} confirmation tests at eta/(2N) = "
            f"{attack_test_level(eta, n):.3g} each"
        )
        est.attack_test_level = 0.0 if attack_exact else attack_test_level(eta, n)
    return est


def attack_test_level(eta: float, n_states: int) -> float:
    """False-alarm level of each state's confirmation test so that N of them and the CP bound share ``eta``."""
    return check_alpha(eta, "eta") / (2.0 * int(n_states))
