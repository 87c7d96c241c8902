"""Confidence bounds used by every certificate: Clopper-Pearson, simultaneous (Bonferroni) bounds, DKW,
Hoeffding and the sample sizes they imply.

Every function validates its failure probability ``alpha`` (the confidence is ``1 - alpha``) and refuses
values outside ``(0, 1)``: a certificate "at confidence 1.2" is not a theorem.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float if it is a failure probability in (0, 1); raise ValueError otherwise."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in the open interval (0, 1), got {alpha!r}") from None
    if not (0.0 < value < 1.0) or math.isnan(value):
        raise ValueError(
            f"{name} must lie in the open interval (0, 1) (it is a failure probability; confidence = 1 - {name}), "
            f"got {alpha!r}"
        )
    return value


def _check_counts(successes: int, n: int) -> tuple[int, int]:
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if int(successes) != successes or not (0 <= successes <= n):
        raise ValueError(f"successes must be an integer in [0, n={n}], got {successes!r}")
    return int(successes), int(n)


def clopper_pearson_lower(successes: int, n: int, alpha: float) -> float:
    """One-sided lower (1 - alpha) Clopper-Pearson bound on a binomial proportion.

    ``P(p >= bound) >= 1 - alpha``; equals the ``alpha`` quantile of Beta(k, n - k + 1) (0 when k = 0).
    Reference: 10000/10000 at alpha 0.05 gives 0.999700; 9000/10000 gives 0.89493.
    """
    k, n = _check_counts(successes, n)
    alpha = check_alpha(alpha)
    if k == 0:
        return 0.0
    return float(_st.beta.ppf(alpha, k, n - k + 1))


def clopper_pearson_upper(successes: int, n: int, alpha: float) -> float:
    """One-sided upper (1 - alpha) Clopper-Pearson bound; the mirror image of :func:`clopper_pearson_lower`."""
    k, n = _check_counts(successes, n)
    return 1.0 - clopper_pearson_lower(n - k, n, alpha)


def clopper_pearson_interval(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Two-sided (1 - alpha) Clopper-Pearson interval (alpha / 2 in each tail)."""
    alpha = check_alpha(alpha)
    return clopper_pearson_lower(successes, n, alpha / 2), clopper_pearson_upper(successes, n, alpha / 2)


def bonferroni(alpha: float, m: int) -> float:
    """Per-bound failure probability so that ``m`` bounds hold simultaneously with probability >= 1 - alpha."""
    alpha = check_alpha(alpha)
    if int(m) != m or m < 1:
        raise ValueError(f"the number of simultaneous bounds m must be a positive integer, got {m!r}")
    return alpha / int(m)


def simultaneous_clopper_pearson(counts: np.ndarray, n: int, alpha: float, sides: list[str]) -> np.ndarray:
    """Bonferroni-corrected one-sided Clopper-Pearson bounds on several proportions at once.

    ``sides[i]`` is ``"lower"`` or ``"upper"``; all bounds hold together with probability >= 1 - alpha.
    """
    counts = np.asarray(counts)
    if len(sides) != len(counts):
        raise ValueError(f"sides has {len(sides)} entries but counts has {len(counts)}")
    per = bonferroni(alpha, len(counts))
    out = []
    for k, side in zip(counts, sides):
        if side == "lower":
            out.append(clopper_pearson_lower(int(k), n, per))
        elif side == "upper":
            out.append(clopper_pearson_upper(int(k), n, per))
        else:
            raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")
    return np.asarray(out)


def hoeffding_epsilon(n: int, alpha: float, two_sided: bool = True) -> float:
    """Half-width of the Hoeffding interval for the mean of n i.i.d. variables in [0, 1].

    Two-sided: ``sqrt(ln(2 / alpha) / (2 n))``; one-sided: ``sqrt(ln(1 / alpha) / (2 n))``.
    """
    alpha = check_alpha(alpha)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return math.sqrt(math.log((2.0 if two_sided else 1.0) / alpha) / (2.0 * n))


def hoeffding_sample_size(epsilon: float, eta: float) -> int:
    """Seed 002: N >= ln(2 / eta) / (2 epsilon^2) samples estimate a [0, 1] mean within epsilon w.p. >= 1 - eta.

    738 at epsilon = eta = 0.05; 26,492 at 0.01.
    """
    eta = check_alpha(eta, "eta")
    if not (0.0 < epsilon < 1.0):
        raise ValueError(f"epsilon must lie in (0, 1), got {epsilon!r}")
    return int(math.ceil(math.log(2.0 / eta) / (2.0 * epsilon**2)))


def dkw_epsilon(n: int, alpha: float) -> float:
    """Dvoretzky-Kiefer-Wolfowitz (Massart constant) band: sup_t |F_n(t) - F(t)| <= eps w.p. >= 1 - alpha.

    ``eps = sqrt(ln(2 / alpha) / (2 n))``; 0.013581 at n = 1e4, alpha = 0.05.
    """
    return hoeffding_epsilon(n, alpha, two_sided=True)


def bounded_mean_bounds(
    values: np.ndarray, alpha: float, method: str = "hoeffding", rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided lower and upper (1 - alpha each) bounds on the means of columns of ``values`` in [0, 1].

    ``method="hoeffding"`` uses Hoeffding's inequality. ``method="bernoulli_cp"`` rounds each value v to a
    Bernoulli(v) coin (with ``rng``) and applies Clopper-Pearson to the coins: exact, and far tighter than
    Hoeffding when outputs saturate at the edges of the range (as tanh actors do).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.size == 0:
        raise ValueError("values is empty")
    if values.min() < -1e-9 or values.max() > 1 + 1e-9:
        raise ValueError(f"values must lie in [0, 1], got range [{values.min()}, {values.max()}]")
    n = values.shape[0]
    if method == "hoeffding":
        eps = hoeffding_epsilon(n, alpha, two_sided=False)
        mean = values.mean(axis=0)
        return np.clip(mean - eps, 0.0, 1.0), np.clip(mean + eps, 0.0, 1.0)
    if method == "bernoulli_cp":
        if rng is None:
            raise ValueError("method='bernoulli_cp' needs an rng for the randomised rounding")
        coins = rng.random(values.shape) < values
        k = coins.sum(axis=0)
        lower = np.array([clopper_pearson_lower(int(c), n, alpha) for c in k])
        upper = np.array([clopper_pearson_upper(int(c), n, alpha) for c in k])
        return lower, upper
    raise ValueError(f"method must be one of ('hoeffding', 'bernoulli_cp'), got {method!r}")
