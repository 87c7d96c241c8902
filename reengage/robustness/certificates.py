"""Per-state certificates of a smoothed policy.

Each certificate states its threat model (the norm and the smoothed keys), its failure probability ``alpha``
(0 for the exact deterministic ablation certificate) and abstains (``action=None`` / ``radius=None``) when the
samples support nothing. Selection and estimation draw from two different noise streams of the smoothed policy
(spawned children of one ``SeedSequence``), so they are independent by construction; batches from any other
stream (a caller's generator, a relabelled copy) are refused.

Pure formulas (numbers in, numbers out) come first, next to their sources; the ``certify_*`` functions draw the
samples from a :class:`~reengage.robustness.smoothing.SmoothedPolicy`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.stats import norm

from .smoothing import SampleBatch, SmoothedPolicy
from .stats import bonferroni, bounded_mean_bounds, check_alpha, clopper_pearson_lower, clopper_pearson_upper

# ------------------------------------------------------------------------------------------------
# pure formulas


def cohen_radius(p_lower: float, sigma: float) -> float | None:
    """Cohen et al. 2019, Thm. 1 with p_B = 1 - p_A: R = sigma * PhiInv(p_A_lower); None (abstain) if p <= 1/2."""
    if p_lower <= 0.5:
        return None
    return float(sigma * norm.ppf(p_lower))


def two_bound_radius(p_a_lower: float, p_b_upper: float, sigma: float) -> float | None:
    """Cohen et al. 2019, Thm. 1: R = sigma / 2 (PhiInv(p_A_lower) - PhiInv(p_B_upper)); None if p_A <= p_B."""
    if p_a_lower <= p_b_upper:
        return None
    return float(0.5 * sigma * (norm.ppf(p_a_lower) - norm.ppf(p_b_upper)))


def ablation_delta(d: int, k: int, rho: int) -> float:
    """Seed 004, Eq. 2.4: Delta = 1 - C(d - rho, k) / C(d, k); Delta(64, 4, 9) = 0.46322."""
    if not (0 <= k <= d) or rho < 0:
        raise ValueError(f"need 0 <= k <= d and rho >= 0, got d={d}, k={k}, rho={rho}")
    if rho > d - k:
        return 1.0
    # exact integer arithmetic: C(d, k) overflows floats for large d
    return 1.0 - math.comb(d - rho, k) / math.comb(d, k)


def randomized_ablation_radius(p_lower: float, d: int, k: int) -> int | None:
    """Seed 004, Ch. 2: largest rho with p_A_lower - Delta(d, k, rho) > 1/2; None if even rho = 0 fails."""
    if p_lower <= 0.5:
        return None
    rho = 0
    while rho + 1 <= d and p_lower - ablation_delta(d, k, rho + 1) > 0.5:
        rho += 1
    return rho


def deterministic_ablation_radius(votes: np.ndarray) -> tuple[int, int]:
    """Seed 004, Sec. 4.5: exact l0 radius from per-group votes; ties go to the lowest action index.

    Each changed feature lies in one group, so it moves at most one vote. A = argmax (lowest index on ties);
    radius = min over c != A of floor((n_A - n_c - 1[c < A]) / 2). Returns (A, radius).
    """
    votes = np.asarray(votes, dtype=np.int64)
    a = int(np.argmax(votes))
    radius = None
    for c in range(len(votes)):
        if c == a:
            continue
        r = (votes[a] - votes[c] - (1 if c < a else 0)) // 2
        radius = r if radius is None else min(radius, r)
    return a, int(radius if radius is not None else 10**9)


def bounded_output_interval(
    h_lower: np.ndarray, h_upper: np.ndarray, radius: float, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Salman et al. 2019: sigma * PhiInv(E f(x + delta)) is 1-Lipschitz for f in [0, 1].

    So at any x' with ||x' - x||_2 <= r: Phi(PhiInv(h_lower) - r / sigma) <= H(x') <= Phi(PhiInv(h_upper) + r / sigma).
    """
    lo = norm.cdf(norm.ppf(np.asarray(h_lower)) - radius / sigma)
    hi = norm.cdf(norm.ppf(np.asarray(h_upper)) + radius / sigma)
    return lo, hi


def tolerance_radius(
    h_lower: np.ndarray, h_upper: np.ndarray, center: np.ndarray, tolerance: np.ndarray, sigma: float
) -> float | None:
    """Largest r with every dimension's certified interval inside [center - tol, center + tol] (unit scale).

    Closed form from :func:`bounded_output_interval`; ``inf`` when the tolerance covers the whole range on a side,
    None (abstain) when the interval at r = 0 already leaves the tolerance band.
    """
    radii = []
    for hl, hu, c, t in zip(h_lower, h_upper, center, tolerance):
        lo_target, hi_target = c - t, c + t
        for bound, target, sign in ((hl, lo_target, 1.0), (hu, hi_target, -1.0)):
            if (sign > 0 and target <= 0.0) or (sign < 0 and target >= 1.0):
                radii.append(float("inf"))
                continue
            gap = sign * (norm.ppf(bound) - norm.ppf(np.clip(target, 0.0, 1.0)))
            if not gap > 0:
                return None
            radii.append(float(sigma * gap))
    return float(min(radii))


# ------------------------------------------------------------------------------------------------
# results


@dataclass
class Certificate:
    """One per-state certificate (JSON-friendly via :meth:`to_dict`)."""

    kind: str
    threat_model: str
    action: Any
    radius: float | None
    alpha: float
    n_selection: int
    n_estimation: int
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def abstained(self) -> bool:
        return self.radius is None

    def certifies(self, eps: float) -> bool:
        """True if the certificate covers perturbations of size ``eps``."""
        return self.radius is not None and self.radius >= eps

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["radius"] = _jsonable(self.radius)
        out["action"] = _jsonable(self.action)
        out["details"] = {k: _jsonable(v) for k, v in self.details.items()}
        return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()]
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        v = float(v)
        return None if math.isnan(v) else ("inf" if math.isinf(v) else v)
    return v


def _independent(selection: SampleBatch, estimation: SampleBatch) -> None:
    """Selection and estimation must come from their own streams (independent children of one SeedSequence)."""
    if selection.stream != "selection" or estimation.stream != "estimation":
        raise ValueError(
            f"selection samples must come from stream 'selection' and estimation samples from stream 'estimation' "
            f"(got {selection.stream!r} and {estimation.stream!r}); draw them with smoothed.sample(obs, n, "
            "stream=...) so that they are independent by construction (reused selection samples void the bound)"
        )


def _need(smoothed: SmoothedPolicy, kinds: Iterable[str], discrete: bool | None, what: str) -> None:
    kinds = tuple(kinds)
    if smoothed.config.kind not in kinds:
        raise ValueError(f"{what} needs smoothing kind in {kinds}, got {smoothed.config.kind!r}")
    if discrete is not None and smoothed.discrete != discrete:
        need = "Discrete" if discrete else "Box"
        raise ValueError(f"{what} needs a {need} action space, got {smoothed.adapter.action_space}")


def _check_n(n0: int, n: int) -> None:
    for name, v in (("n0", n0), ("n", n)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


# ------------------------------------------------------------------------------------------------
# discrete actions, l2


def cohen_from_batches(
    smoothed: SmoothedPolicy, selection: SampleBatch, estimation: SampleBatch, alpha: float
) -> Certificate:
    """CERTIFY of Cohen et al.: select the top action on ``selection``, bound its probability on ``estimation``."""
    alpha = check_alpha(alpha)
    _independent(selection, estimation)
    sel = smoothed.counts(selection)
    a = int(np.argmax(sel))
    n_a = int(smoothed.counts(estimation)[a])
    p_lower = clopper_pearson_lower(n_a, estimation.n, alpha)
    radius = cohen_radius(p_lower, smoothed.config.sigma)
    return Certificate(
        kind="discrete_l2",
        threat_model=f"l2 perturbation of keys {list(smoothed.config.keys)} (concatenated), Gaussian sigma "
        f"{smoothed.config.sigma}",
        action=None if radius is None else a,
        radius=radius,
        alpha=alpha,
        n_selection=selection.n,
        n_estimation=estimation.n,
        details={"selected": a, "count": n_a, "p_lower": p_lower, "sigma": smoothed.config.sigma},
    )


def certify_discrete_l2(
    smoothed: SmoothedPolicy, obs: Any, n0: int = 100, n: int = 10_000, alpha: float = 0.001
) -> Certificate:
    """Smoothed action and its certified l2 radius (Cohen et al. 2019), holding with probability >= 1 - alpha."""
    _need(smoothed, ("gaussian",), True, "certify_discrete_l2")
    _check_n(n0, n)
    alpha = check_alpha(alpha)
    selection = smoothed.sample(obs, n0, stream="selection")
    estimation = smoothed.sample(obs, n, stream="estimation")
    return cohen_from_batches(smoothed, selection, estimation, alpha)


def certify_relaxed(
    smoothed: SmoothedPolicy,
    obs: Any,
    acceptable: Iterable[int] | None = None,
    top_k: int | None = None,
    n0: int = 100,
    n: int = 10_000,
    alpha: float = 0.001,
) -> Certificate:
    """Radius within which the smoothed action stays inside a set S of actions (after seed 003's relaxations).

    S is either the user's ``acceptable`` set (affinity-style) or the clean top-``k`` actions chosen on the
    selection draw. With A the most voted action of S (selection draw), g(x') lies in S whenever
    p_A(x') > p_{not S}(x') >= max_{c not in S} p_c(x'); Cohen's Thm. 1 bounds both sides, with simultaneous
    (Bonferroni alpha/2) Clopper-Pearson bounds on the estimation draw: R = sigma/2 (PhiInv(pA_low) - PhiInv(pN_up)).
    """
    _need(smoothed, ("gaussian",), True, "certify_relaxed")
    _check_n(n0, n)
    alpha = check_alpha(alpha)
    if (acceptable is None) == (top_k is None):
        raise ValueError("give exactly one of acceptable (a set of actions) or top_k (an integer)")
    n_act = smoothed.n_actions
    selection = smoothed.sample(obs, n0, stream="selection")
    sel = smoothed.counts(selection)
    if acceptable is not None:
        s = sorted({int(a) for a in acceptable})
        if not s or s[0] < 0 or s[-1] >= n_act:
            raise ValueError(f"acceptable must be a non-empty set of actions in [0, {n_act}), got {acceptable!r}")
        mode = "acceptable_set"
    else:
        if int(top_k) != top_k or not (1 <= top_k <= n_act):
            raise ValueError(f"top_k must be an integer in [1, {n_act}], got {top_k!r}")
        order = np.lexsort((np.arange(n_act), -sel))  # most votes first, ties to lower index
        s = sorted(int(a) for a in order[: int(top_k)])
        mode = f"top_{int(top_k)}"
    a = max(s, key=lambda c: (sel[c], -c))
    estimation = smoothed.sample(obs, n, stream="estimation")
    _independent(selection, estimation)
    est = smoothed.counts(estimation)
    outside = int(n - est[s].sum())
    per = bonferroni(alpha, 2)
    p_a = clopper_pearson_lower(int(est[a]), n, per)
    p_out = clopper_pearson_upper(outside, n, per)
    if len(s) == n_act:
        radius = float("inf")
    else:
        radius = two_bound_radius(p_a, p_out, smoothed.config.sigma)
    return Certificate(
        kind="discrete_relaxed",
        threat_model=f"l2 perturbation of keys {list(smoothed.config.keys)}; guarantee: smoothed action in S",
        action=None if radius is None else s,
        radius=radius,
        alpha=alpha,
        n_selection=n0,
        n_estimation=n,
        details={"mode": mode, "set": s, "anchor": a, "pA_lower": p_a, "p_outside_upper": p_out},
    )


# ------------------------------------------------------------------------------------------------
# discrete actions, l0 on binary (or any) features


def certify_l0_randomized(
    smoothed: SmoothedPolicy, obs: Any, n0: int = 100, n: int = 10_000, alpha: float = 0.001
) -> Certificate:
    """Randomized ablation (seed 004, Ch. 2): radius = largest rho with pA_lower - Delta(d, k, rho) > 1/2."""
    _need(smoothed, ("ablation",), True, "certify_l0_randomized")
    _check_n(n0, n)
    alpha = check_alpha(alpha)
    selection = smoothed.sample(obs, n0, stream="selection")
    estimation = smoothed.sample(obs, n, stream="estimation")
    _independent(selection, estimation)
    a = int(np.argmax(smoothed.counts(selection)))
    n_a = int(smoothed.counts(estimation)[a])
    p_lower = clopper_pearson_lower(n_a, n, alpha)
    rho = randomized_ablation_radius(p_lower, smoothed.d, smoothed.config.retain)
    return Certificate(
        kind="discrete_l0_randomized",
        threat_model=f"l0: any change of up to rho of the {smoothed.d} features of keys {list(smoothed.config.keys)}",
        action=None if rho is None else a,
        radius=rho,
        alpha=alpha,
        n_selection=n0,
        n_estimation=n,
        details={"selected": a, "count": n_a, "p_lower": p_lower, "d": smoothed.d, "retain": smoothed.config.retain},
    )


def certify_l0_deterministic(smoothed: SmoothedPolicy, obs: Any) -> Certificate:
    """Deterministic ablation (seed 004, Sec. 4.5): exact l0 radius from ``groups`` forward passes (alpha = 0)."""
    _need(smoothed, ("deterministic_ablation",), True, "certify_l0_deterministic")
    votes = np.bincount(smoothed.group_votes(obs), minlength=smoothed.n_actions)
    a, radius = deterministic_ablation_radius(votes)
    return Certificate(
        kind="discrete_l0_deterministic",
        threat_model=f"l0: any change of up to rho of the {smoothed.d} features of keys {list(smoothed.config.keys)}",
        action=a,
        radius=radius,
        alpha=0.0,
        n_selection=0,
        n_estimation=smoothed.config.groups,
        details={"votes": votes, "groups": smoothed.config.groups},
    )


# ------------------------------------------------------------------------------------------------
# continuous actions, l2 (bounded outputs)


def certify_continuous_l2(
    smoothed: SmoothedPolicy,
    obs: Any,
    n: int = 10_000,
    alpha: float = 0.001,
    radius: float = 0.0,
    tolerance: float | np.ndarray | None = None,
    method: str = "bernoulli_cp",
) -> Certificate:
    """Per-dimension certified intervals of the smoothed (mean) action under any l2 perturbation <= ``radius``.

    Each action dimension is rescaled to [0, 1] by the action bounds, its smoothed mean is bounded on both sides
    (2m simultaneous bounds, alpha / (2m) each), and widened by :func:`bounded_output_interval`. With
    ``tolerance`` (action units, scalar or per dimension, in (0, high - low]) the certificate's ``radius`` is the
    largest r for which every dimension stays within tolerance of the clean smoothed action estimate.
    """
    _need(smoothed, ("gaussian",), False, "certify_continuous_l2")
    _check_n(1, n)
    alpha = check_alpha(alpha)
    if not (radius >= 0 and np.isfinite(radius)):
        raise ValueError(f"radius must be a finite number >= 0, got {radius!r}")
    space = smoothed.adapter.action_space
    low, high = space.low.astype(np.float64).reshape(-1), space.high.astype(np.float64).reshape(-1)
    width = high - low
    tol = None
    if tolerance is not None:
        tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), low.shape).copy()
        if np.any(~(tol > 0)) or np.any(tol > width):
            raise ValueError(
                f"tolerance must lie in (0, high - low] for every action dimension (the action range is "
                f"{width.tolist()}), got {tolerance!r}"
            )
    m = low.size
    batch = smoothed.sample(obs, n, stream="estimation")
    h = np.clip((batch.outputs.reshape(n, m) - low) / width, 0.0, 1.0)
    h_lo, h_hi = bounded_mean_bounds(h, bonferroni(alpha, 2 * m), method=method, rng=smoothed.stream("rounding"))
    lo, hi = bounded_output_interval(h_lo, h_hi, radius, smoothed.config.sigma)
    center = h.mean(axis=0)
    details = {
        "mean_action": low + width * center,
        "interval_low": low + width * lo,
        "interval_high": high - width * (1.0 - hi),
        "at_radius": radius,
        "h_lower": h_lo,
        "h_upper": h_hi,
        "bound": method,
        "sigma": smoothed.config.sigma,
    }
    cert_radius: float | None = radius
    if tol is not None:
        cert_radius = tolerance_radius(h_lo, h_hi, center, tol / width, smoothed.config.sigma)
        details["tolerance"] = tol
    return Certificate(
        kind="continuous_l2",
        threat_model=f"l2 perturbation of keys {list(smoothed.config.keys)}; smoothed action = mean action",
        action=low + width * center,
        radius=cert_radius,
        alpha=alpha,
        n_selection=0,
        n_estimation=n,
        details=details,
    )


def continuous_intervals(
    cert: Certificate, radii: np.ndarray, low: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Certified intervals of each action dimension at each radius in ``radii`` (arrays (R, m))."""
    h_lo, h_hi = np.asarray(cert.details["h_lower"]), np.asarray(cert.details["h_upper"])
    sigma = cert.details["sigma"]
    los, his = [], []
    for r in np.asarray(radii, dtype=np.float64):
        lo, hi = bounded_output_interval(h_lo, h_hi, float(r), sigma)
        los.append(low + (high - low) * lo)
        his.append(low + (high - low) * hi)
    return np.array(los), np.array(his)


__all__ = [
    "Certificate",
    "ablation_delta",
    "bounded_output_interval",
    "certify_continuous_l2",
    "certify_discrete_l2",
    "certify_l0_deterministic",
    "certify_l0_randomized",
    "certify_relaxed",
    "cohen_from_batches",
    "cohen_radius",
    "continuous_intervals",
    "deterministic_ablation_radius",
    "randomized_ablation_radius",
    "tolerance_radius",
    "two_bound_radius",
]
