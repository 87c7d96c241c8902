"""Comparing a variant with the baseline over a handful of seeds, and checking the comparison by simulation.

The report (``python -m reengage.experiment report``) and the re-evaluation table
(``python -m reengage.experiment reevaluate``) compare variants over 3 to 10 seeds each. At such sizes a
percentile bootstrap interval is far too narrow (resampling 3 values cannot see the spread of the
population they came from), so the comparisons here use:

* the **difference of means** (variant - baseline) with a **Welch t interval** (:func:`welch_intervals`),
  which allows the two variants different spreads;
* an **exact permutation test** of that difference (:func:`permutation_p_values`): under the hypothesis that
  both variants' seeds come from one distribution, every split of the pooled seeds into the two groups is
  equally likely, so the p-value is exact at any number of seeds, for normal data and for success rates with
  many ties at 0 and 1 alike. Past :data:`EXACT_ARRANGEMENTS` splits a seeded random sample of
  :data:`RANDOM_ARRANGEMENTS` splits is used, with the p-value ``(1 + k) / (1 + B)``, which keeps the test exact;
* a difference is **claimed** (:func:`ci_excludes_zero`) only where both agree: the Welch interval excludes 0
  and the permutation p-value is at most :data:`ALPHA`. Where neither group varies (every seed of each
  variant scored the same) there is no Welch interval and the permutation test alone decides;
* the **probability of improvement** P(variant > baseline), ties counted 1/2 (the Mann-Whitney form rliable
  reports), with the permutation p-value of the same exact test applied to ranks
  (:func:`rank_permutation_p_values`); it is given as a point estimate and p-value, without an interval.

A comparison with fewer than :data:`MIN_CONFIRMATORY_SEEDS` seeds in either group is *exploratory*.

:func:`coverage_table` measures how often each method claims a difference that is not there (both groups
drawn from one distribution) and how often it finds one that is, for the scenarios of :data:`SCENARIOS`;
``python -m reengage.experiment coverage`` writes the table to ``docs/statistics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05
# fewer seeds than this in either group: the comparison is labelled exploratory
MIN_CONFIRMATORY_SEEDS = 5
# enumerate every split of the pooled seeds up to this many (9 vs 9 seeds: 48,620 splits)...
EXACT_ARRANGEMENTS = 50_000
# ...and past it draw this many at random (10 vs 10 has 184,756 splits)
RANDOM_ARRANGEMENTS = 20_000
PERMUTATION_SEED = 0
# rows of pooled data per matrix product: keeps (rows x splits) near 2 million numbers (16 MB)
_CHUNK_NUMBERS = 2_000_000

Interval = tuple[float, float | None, float | None]


# ---------------------------------------------------------------- the pieces, vectorised over datasets


def welch_intervals(
    variant: np.ndarray, baseline: np.ndarray, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference of means (variant - baseline) along the last axis, with its Welch t interval.

    ``variant`` is (..., n1) and ``baseline`` (..., n2), n1, n2 >= 2. Returns (point, low, high); low and
    high are NaN where neither group varies: the Welch standard error is then 0, and an interval [d, d]
    would read as certainty that 3 equal numbers cannot give.
    """
    x, y = np.asarray(variant, float), np.asarray(baseline, float)
    n1, n2 = x.shape[-1], y.shape[-1]
    point = x.mean(axis=-1) - y.mean(axis=-1)
    # the variance of equal values is set to exactly 0: floating point leaves ~1e-34 (mean of [0.1] * 3)
    v1 = np.where(np.ptp(x, axis=-1) == 0, 0.0, x.var(axis=-1, ddof=1) / n1)
    v2 = np.where(np.ptp(y, axis=-1) == 0, 0.0, y.var(axis=-1, ddof=1) / n2)
    squared_error = v1 + v2
    spread = squared_error > 0
    safe = np.where(spread, squared_error, 1.0)
    # Welch-Satterthwaite degrees of freedom (n - 1 of the group that varies when only one does)
    df = safe**2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1) + np.where(spread, 0.0, 1.0))
    half = stats.t.ppf(0.5 + confidence / 2, df) * np.sqrt(safe)
    low = np.where(spread, point - half, np.nan)
    high = np.where(spread, point + half, np.nan)
    return point, low, high


@lru_cache(maxsize=64)
def arrangements(n1: int, n2: int) -> tuple[np.ndarray, bool]:
    """The splits of ``n1 + n2`` pooled values into a group of ``n1`` and one of ``n2``.

    Returns (matrix, exact): each row of the 0/1 matrix marks the pooled positions of the first group. All
    ``C(n1 + n2, n1)`` splits when there are at most :data:`EXACT_ARRANGEMENTS` (exact = True), else
    :data:`RANDOM_ARRANGEMENTS` uniformly random ones from a fixed seed, so that a report is reproducible.
    """
    total = n1 + n2
    count = math.comb(total, n1)
    if count <= EXACT_ARRANGEMENTS:
        members = np.array(list(combinations(range(total), n1)), dtype=np.intp).reshape(count, n1)
        exact = True
    else:
        rng = np.random.default_rng(PERMUTATION_SEED)
        members = np.argsort(rng.random((RANDOM_ARRANGEMENTS, total)), axis=1)[:, :n1]
        exact = False
    matrix = np.zeros((len(members), total))
    np.put_along_axis(matrix, members, 1.0, axis=1)
    matrix.setflags(write=False)
    return matrix, exact


def _split_p_values(pooled: np.ndarray, n1: int, tolerance: np.ndarray) -> np.ndarray:
    """Two-sided permutation p-values of the first ``n1`` columns' sum, one per row of ``pooled``.

    The statistic is |sum of the first group - its expectation under exchangeability|; for the pooled
    values it is a monotone function of |difference of means|, and for pooled ranks of |P - 1/2|.
    """
    rows, total = pooled.shape
    matrix, exact = arrangements(n1, total - n1)
    centre = pooled.sum(axis=1) * n1 / total
    observed = np.abs(pooled[:, :n1].sum(axis=1) - centre) - tolerance
    at_least = np.empty(rows)
    chunk = max(1, _CHUNK_NUMBERS // len(matrix))
    for start in range(0, rows, chunk):
        part = slice(start, start + chunk)
        sums = pooled[part] @ matrix.T
        at_least[part] = (np.abs(sums - centre[part, None]) >= observed[part, None]).sum(axis=1)
    if exact:
        return at_least / len(matrix)  # the observed split is one of the rows: p >= 1 / C(n1 + n2, n1)
    return (1.0 + at_least) / (1.0 + len(matrix))


def permutation_p_values(variant: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Two-sided permutation p-value of the difference of means, per dataset (last axis: seeds).

    Exact under the hypothesis that all seeds of both groups come from one distribution. ``variant`` is
    (..., n1) and ``baseline`` (..., n2); returns shape (...). Splits whose statistic equals the observed
    one up to rounding count as at least as extreme (ties are common with success rates).
    """
    x, y = np.asarray(variant, float), np.asarray(baseline, float)
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    pooled = np.concatenate(
        [np.broadcast_to(x, shape + x.shape[-1:]), np.broadcast_to(y, shape + y.shape[-1:])], axis=-1
    ).reshape(-1, x.shape[-1] + y.shape[-1])
    # sums of the same numbers in another order differ by rounding only (~1e-16 of their size)
    tolerance = 1e-9 * (1.0 + np.abs(pooled).sum(axis=1))
    return _split_p_values(pooled, x.shape[-1], tolerance).reshape(shape)


def _pooled_ranks(variant: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, tuple[int, ...], int, int]:
    x, y = np.asarray(variant, float), np.asarray(baseline, float)
    shape = np.broadcast_shapes(x.shape[:-1], y.shape[:-1])
    n1, n2 = x.shape[-1], y.shape[-1]
    pooled = np.concatenate([np.broadcast_to(x, shape + (n1,)), np.broadcast_to(y, shape + (n2,))], axis=-1)
    return stats.rankdata(pooled.reshape(-1, n1 + n2), axis=1), shape, n1, n2


def improvement_probabilities(variant: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """P(variant > baseline) + P(variant = baseline) / 2 over all pairs of seeds, per dataset.

    The Mann-Whitney form (rliable's probability of improvement for one task): from the pooled mid-ranks,
    P = (rank sum of the variant - n1 (n1 + 1) / 2) / (n1 n2).
    """
    ranks, shape, n1, n2 = _pooled_ranks(variant, baseline)
    return ((ranks[:, :n1].sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n2)).reshape(shape)


def rank_permutation_p_values(variant: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Two-sided permutation p-value of P(variant > baseline) = 1/2, per dataset (the exact Wilcoxon-Mann-Whitney
    test with mid-ranks for ties): the test of :func:`permutation_p_values` on the pooled ranks."""
    ranks, shape, n1, _ = _pooled_ranks(variant, baseline)
    # rank sums are multiples of 1/2, exact in floating point: the tolerance only has to be below 1/2
    return _split_p_values(ranks, n1, np.full(len(ranks), 1e-6)).reshape(shape)


def claims_difference(low: np.ndarray, high: np.ndarray, p_value: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """The claim rule of the report, vectorised: the permutation p-value is at most ``alpha`` and the Welch
    interval does not hold 0. A missing interval (NaN: neither group varies) leaves the decision to the
    permutation test; a missing p-value (NaN: a group with one seed) is no claim. The claim's direction is
    the sign of the difference (a p-value at most ``alpha`` implies it is not 0)."""
    p = np.asarray(p_value, float)
    holds_zero = (np.asarray(low, float) <= 0) & (np.asarray(high, float) >= 0)  # False where NaN
    return (p <= alpha) & ~holds_zero


def percentile_bootstrap_intervals(
    variant: np.ndarray, baseline: np.ndarray, reps: int, rng: np.random.Generator, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """The interval the report used before: each group's seeds resampled independently (rliable's
    stratified bootstrap for one task), the difference of means per resample, and its percentiles.

    Kept for the coverage table only, so that the reader sees why it was replaced. ``variant`` is (S, n1),
    ``baseline`` (S, n2); returns (low, high), each (S,).
    """
    x, y = np.asarray(variant, float), np.asarray(baseline, float)
    rows, n1 = x.shape
    n2 = y.shape[1]
    low, high = np.empty(rows), np.empty(rows)
    chunk = max(1, _CHUNK_NUMBERS // (reps * max(n1, n2)))
    tails = [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2]
    for start in range(0, rows, chunk):
        part = slice(start, start + chunk)
        count = len(x[part])
        x_means = np.take_along_axis(x[part, None, :], rng.integers(0, n1, (count, reps, n1)), axis=2).mean(axis=2)
        y_means = np.take_along_axis(y[part, None, :], rng.integers(0, n2, (count, reps, n2)), axis=2).mean(axis=2)
        low[part], high[part] = np.percentile(x_means - y_means, tails, axis=1)
    return low, high


# ---------------------------------------------------------------- one comparison, as the report shows it


class _SeedCounts:
    """The seed counts of a comparison, as the report names them."""

    n_variant: int
    n_baseline: int

    @property
    def seeds(self) -> str:
        return f"{self.n_variant} vs {self.n_baseline}"

    @property
    def exploratory(self) -> bool:
        """Fewer than :data:`MIN_CONFIRMATORY_SEEDS` seeds on either side."""
        return min(self.n_variant, self.n_baseline) < MIN_CONFIRMATORY_SEEDS


@dataclass(frozen=True)
class DifferenceTest(_SeedCounts):
    """Difference of means (variant - baseline): Welch interval, permutation p-value and the seed counts.

    ``low``/``high`` are None where a group has one seed or where neither group varies; ``p_value`` is None
    where a group has one seed (or a value is not finite). :func:`ci_excludes_zero` is the claim.
    """

    point: float
    low: float | None
    high: float | None
    p_value: float | None
    n_variant: int
    n_baseline: int

    @property
    def estimate(self) -> Interval:
        return self.point, self.low, self.high

    @property
    def no_spread(self) -> bool:
        """Both groups have several seeds, and within each every seed scored the same."""
        return self.p_value is not None and self.low is None


@dataclass(frozen=True)
class ImprovementTest(_SeedCounts):
    """P(variant > baseline), ties 1/2, with the permutation p-value of P = 1/2 (None for a one-seed group)."""

    point: float
    p_value: float | None
    n_variant: int
    n_baseline: int


def _testable(x: np.ndarray, y: np.ndarray) -> bool:
    return min(len(x), len(y)) >= 2 and bool(np.isfinite(x).all() and np.isfinite(y).all())


def difference_test(variant: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray) -> DifferenceTest:
    """Per-seed values of the variant and the baseline -> :class:`DifferenceTest`."""
    x, y = np.asarray(variant, float).ravel(), np.asarray(baseline, float).ravel()
    point = float(x.mean() - y.mean())
    if not _testable(x, y):
        return DifferenceTest(point, None, None, None, len(x), len(y))
    _, low, high = welch_intervals(x, y)
    p_value = float(permutation_p_values(x, y))
    if np.isnan(low):
        return DifferenceTest(point, None, None, p_value, len(x), len(y))
    return DifferenceTest(point, float(low), float(high), p_value, len(x), len(y))


def ci_excludes_zero(difference: DifferenceTest) -> bool:
    """Whether the report claims a difference: the single predicate for ``excludes_zero`` in ``summary.json``
    and for the "excludes 0" column (:func:`claims_difference` on one comparison)."""
    if difference.p_value is None:
        return False
    low = np.nan if difference.low is None else difference.low
    high = np.nan if difference.high is None else difference.high
    return bool(claims_difference(low, high, difference.p_value))


def improvement_test(variant: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray) -> ImprovementTest:
    """Per-seed values -> :class:`ImprovementTest` (point estimate and exact permutation p-value)."""
    x, y = np.asarray(variant, float).ravel(), np.asarray(baseline, float).ravel()
    if not _testable(x, y):
        point = float(improvement_probabilities(x, y)) if len(x) and len(y) else float("nan")
        return ImprovementTest(point, None, len(x), len(y))
    return ImprovementTest(
        float(improvement_probabilities(x, y)), float(rank_permutation_p_values(x, y)), len(x), len(y)
    )


def stratified_improvement_test(
    variant: np.ndarray, baseline: np.ndarray, draws: int = RANDOM_ARRANGEMENTS
) -> ImprovementTest:
    """P(variant > baseline) averaged over tasks (rliable's probability of improvement over (seeds x tasks)
    matrices), with a stratified permutation p-value of "1/2": the seeds are split at random within each task,
    independently across tasks, ``draws`` times from a fixed seed; p = (1 + k) / (1 + draws)."""
    x, y = np.asarray(variant, float), np.asarray(baseline, float)
    n1, n2 = len(x), len(y)
    point = float(np.mean(improvement_probabilities(x.T, y.T)))
    if not _testable(x.ravel(), y.ravel()) or min(n1, n2) < 2:
        return ImprovementTest(point, None, n1, n2)
    ranks, _, _, _ = _pooled_ranks(x.T, y.T)  # (tasks, n1 + n2)
    rng = np.random.default_rng(PERMUTATION_SEED)
    offset = n1 * (n1 + 1) / 2
    drawn = np.zeros(draws)
    for task_ranks in ranks:
        members = np.argsort(rng.random((draws, n1 + n2)), axis=1)[:, :n1]
        drawn += (task_ranks[members].sum(axis=1) - offset) / (n1 * n2)
    drawn /= len(ranks)
    # sums of multiples of 1 / (2 n1 n2) averaged: rounding is far below the spacing of the statistic
    at_least = np.sum(np.abs(drawn - 0.5) >= abs(point - 0.5) - 1e-9)
    return ImprovementTest(point, float((1 + at_least) / (1 + draws)), n1, n2)


# ---------------------------------------------------------------- coverage by simulation

Sampler = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


@dataclass(frozen=True)
class Scenario:
    """Per-seed scores of the two groups. Under the null the variant is drawn from ``null_variant`` and the
    baseline from ``null_baseline``; under the effect the variant is drawn from ``effect_variant`` instead.
    ``same_distribution``: the two null samplers are one distribution (the hypothesis the permutation tests
    are exact under); otherwise they only share their mean."""

    name: str
    null: str
    effect: str
    null_variant: Sampler
    null_baseline: Sampler
    effect_variant: Sampler
    same_distribution: bool = True


def _normal(shift: float, scale: float = 1.0) -> Sampler:
    return lambda rng, size: shift + scale * rng.standard_normal(size)


def _success_mixture(never: float, always: float) -> Sampler:
    """A seed that never learns (0.0) with probability ``never``, one that always succeeds (1.0) with
    probability ``always``, else a success rate from 20 evaluation episodes at 0.3 (k / 20: more ties)."""

    def sample(rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
        draw = rng.random(size)
        partial = rng.binomial(20, 0.3, size) / 20
        return np.where(draw < never, 0.0, np.where(draw < never + always, 1.0, partial))

    return sample


def _all_or_nothing(success: float) -> Sampler:
    return lambda rng, size: (rng.random(size) < success).astype(float)


def _episodes(success: float, episodes: int = 20) -> Sampler:
    return lambda rng, size: rng.binomial(episodes, success, size) / episodes


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "normal",
        "both groups N(0, 1)",
        "variant N(1, 1): a shift of 1 standard deviation",
        _normal(0.0),
        _normal(0.0),
        _normal(1.0),
    ),
    Scenario(
        "bounded with ties",
        "both groups: 0.0 with probability 0.4, 1.0 with probability 0.2, else k/20 "
        "with k ~ Binomial(20, 0.3) (mean 0.32)",
        "variant: 0.0 with probability 0.2, 1.0 with probability 0.4 (mean 0.52, +0.20)",
        _success_mixture(0.4, 0.2),
        _success_mixture(0.4, 0.2),
        _success_mixture(0.2, 0.4),
    ),
    Scenario(
        "all or nothing",
        "both groups: 1.0 with probability 0.5, else 0.0",
        "variant: 1.0 with probability 0.9 (+0.40)",
        _all_or_nothing(0.5),
        _all_or_nothing(0.5),
        _all_or_nothing(0.9),
    ),
    Scenario(
        "unequal spread",
        "equal means 0.5, different spreads: variant 0.0 or 1.0 with probability 1/2 each, "
        "baseline k/20 with k ~ Binomial(20, 0.5)",
        "variant: 1.0 with probability 0.9 (+0.40)",
        _all_or_nothing(0.5),
        _episodes(0.5),
        _all_or_nothing(0.9),
        same_distribution=False,
    ),
)

BOOTSTRAP = "percentile bootstrap CI excludes 0 (old report)"
WELCH = "Welch t CI excludes 0"
PERMUTATION = "permutation test of the difference of means, p <= 0.05"
REPORTED = "Welch CI excludes 0 and permutation p <= 0.05 (the report's claim)"
RANKS = "permutation test of P(variant > baseline) = 1/2, p <= 0.05"
METHODS = (BOOTSTRAP, WELCH, PERMUTATION, REPORTED, RANKS)


def claims(
    variant: np.ndarray,
    baseline: np.ndarray,
    rng: np.random.Generator,
    bootstrap_reps: int = 2000,
    methods: Sequence[str] = METHODS,
) -> dict[str, np.ndarray]:
    """Per method of ``methods`` (names from :data:`METHODS`), the sign of each simulated dataset's claim:
    +1 (variant higher), -1 (lower) or 0 (none). ``variant`` is (S, n1) and ``baseline`` (S, n2)."""
    unknown = [method for method in methods if method not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; methods: {list(METHODS)}")
    point, low, high = welch_intervals(variant, baseline)
    direction = np.sign(point)
    result: dict[str, np.ndarray] = {}
    if BOOTSTRAP in methods:
        boot_low, boot_high = percentile_bootstrap_intervals(variant, baseline, bootstrap_reps, rng)
        result[BOOTSTRAP] = np.where(boot_low > 0, 1, np.where(boot_high < 0, -1, 0))
    if WELCH in methods:
        result[WELCH] = np.where(low > 0, 1, np.where(high < 0, -1, 0))
    if PERMUTATION in methods or REPORTED in methods:
        p_means = permutation_p_values(variant, baseline)
        result[PERMUTATION] = np.where(p_means <= ALPHA, direction, 0)
        result[REPORTED] = np.where(claims_difference(low, high, p_means), direction, 0)
    if RANKS in methods:
        probability = improvement_probabilities(variant, baseline)
        result[RANKS] = np.where(rank_permutation_p_values(variant, baseline) <= ALPHA, np.sign(probability - 0.5), 0)
    return {method: result[method].astype(int) for method in methods}


@dataclass(frozen=True)
class CoverageRow:
    """One method at one number of seeds per group in one scenario."""

    scenario: str
    method: str
    seeds: int
    simulations: int
    false_claims: float  # share of null datasets with a claim (either direction)
    power: float  # share of datasets with the effect where the claim is "higher"

    @property
    def false_claims_error(self) -> float:
        """Monte Carlo standard error of ``false_claims``."""
        return math.sqrt(self.false_claims * (1 - self.false_claims) / self.simulations)


def claim_bound(simulations: int, alpha: float = ALPHA, errors: float = 3.0) -> float:
    """``alpha`` plus ``errors`` Monte Carlo standard errors of a binomial rate ``alpha`` over ``simulations``.

    A method whose false-claim rate is at most ``alpha`` measures above alpha + 3 SE in about 1 cell of 700.
    """
    return alpha + errors * math.sqrt(alpha * (1 - alpha) / simulations)


def coverage_table(
    simulations: int = 4000,
    seeds: Sequence[int] = (3, 5, 10),
    scenarios: Sequence[Scenario] = SCENARIOS,
    seed: int = 0,
    bootstrap_reps: int = 2000,
    methods: Sequence[str] = METHODS,
) -> list[CoverageRow]:
    """False-claim rate under the null and power under the effect, per scenario, seeds per group and method.

    Each (scenario, seeds) cell draws its datasets from a generator of its own (``seed``, the scenario's name,
    the seeds), so that its numbers do not depend on which other cells or methods are computed; the
    bootstrap resamples come from another one. Rows are ordered by scenario, method, seeds.
    """
    if simulations < 1:
        raise ValueError(f"simulations must be >= 1, got {simulations}")
    if any(n < 2 for n in seeds):
        raise ValueError(f"seeds per group must be >= 2, got {list(seeds)}")
    cells: dict[tuple[str, str, int], CoverageRow] = {}
    for scenario in scenarios:
        tag = [ord(character) for character in scenario.name]
        for n in seeds:
            data = np.random.default_rng([seed, n, *tag])
            resampling = np.random.default_rng([seed, n, *tag, 1])
            null_variant = scenario.null_variant(data, (simulations, n))
            null_baseline = scenario.null_baseline(data, (simulations, n))
            effect_variant = scenario.effect_variant(data, (simulations, n))
            effect_baseline = scenario.null_baseline(data, (simulations, n))
            null = claims(null_variant, null_baseline, resampling, bootstrap_reps, methods)
            effect = claims(effect_variant, effect_baseline, resampling, bootstrap_reps, methods)
            for method in methods:
                cells[(scenario.name, method, n)] = CoverageRow(
                    scenario.name,
                    method,
                    n,
                    simulations,
                    float(np.mean(null[method] != 0)),
                    float(np.mean(effect[method] > 0)),
                )
    return [cells[(scenario.name, method, n)] for scenario in scenarios for method in methods for n in seeds]


def _table(rows: list[CoverageRow], bound: float) -> list[str]:
    lines = [
        "| scenario | method | seeds per group | false claims under the null (± MC SE) | power at the effect |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        flag = " **over**" if row.false_claims > bound else ""
        lines.append(
            f"| {row.scenario} | {row.method} | {row.seeds} vs {row.seeds} | "
            f"{row.false_claims:.3f} ± {row.false_claims_error:.3f}{flag} | {row.power:.3f} |"
        )
    return lines


def coverage_markdown(rows: list[CoverageRow], command: str, scenarios: Sequence[Scenario] = SCENARIOS) -> str:
    """``docs/statistics.md``: what the report uses and why, the scenarios, and the table of ``rows``."""
    simulations = rows[0].simulations
    bound = claim_bound(simulations)
    same = {scenario.name for scenario in scenarios if scenario.same_distribution}
    old = [row for row in rows if row.method == BOOTSTRAP and row.scenario in same]
    worst = max(old, key=lambda row: row.false_claims) if old else None
    lines = [
        "# Statistics of the experiment report",
        "",
        f"Written by `{command}`.",
        "",
        "`python -m reengage.experiment report` and `reevaluate` compare each variant with the baseline over a "
        "few seeds (3 to 10). They used to call a difference real when a percentile bootstrap interval "
        "excluded 0. With a handful of seeds that interval is too narrow: resampling 3 numbers cannot show "
        "how far apart 3 new seeds could fall."
        + (
            f" In the table below it claims a difference between two variants drawn from one distribution in "
            f"{worst.false_claims:.0%} of {worst.scenario} datasets at {worst.seeds} seeds per group, against "
            "the 5% a 95% interval promises."
            if worst
            else ""
        ),
        "The report now uses:",
        "",
        "* **Difference of means (variant - baseline):** a 95% Welch t interval (it allows the two variants "
        "different spreads), and a two-sided permutation test: if both variants' seeds come from one "
        "distribution, every split of the pooled seeds into two groups is equally likely, so the p-value is "
        "exact at any number of seeds and for any data, ties at 0 and 1 included (every split where there "
        f"are at most {EXACT_ARRANGEMENTS:,}, which covers up to 9 vs 9 seeds; past that {RANDOM_ARRANGEMENTS:,} "
        "random splits from a fixed seed, which keeps the test exact).",
        '* **A difference is claimed** ("excludes 0: yes", `excludes_zero` in `summary.json`) only where the '
        "Welch interval excludes 0 *and* the permutation p-value is at most 0.05. The permutation test holds "
        "the false claims to 5% whatever the data; the Welch interval keeps a claim from standing beside an "
        "interval that holds 0. Where neither variant varies (every seed of each scored the same) there is "
        "no Welch interval and the permutation test alone decides. With 3 vs 3 seeds the smallest possible "
        "p-value is 2/20 = 0.10, so no difference can be claimed: that is all 3 seeds can tell.",
        "* **P(variant > baseline)** (ties count 1/2, rliable's probability of improvement): the point "
        "estimate with the p-value of the same permutation test on ranks (the exact Mann-Whitney test); no "
        "interval. Over several environments: the average over environments, with a permutation test that "
        "splits the seeds within each environment.",
        f"* A comparison with fewer than {MIN_CONFIRMATORY_SEEDS} seeds in either group is labelled "
        "**exploratory**, and every comparison names its seed counts (`5 vs 5`).",
        "* rliable's percentile bootstrap stays where it describes one variant: the per-variant mean, IQM, "
        "AUC and steps-to-threshold intervals, the curve bands, and the IQM over environments. None of "
        "these is used to claim a difference.",
        "",
        "## Scenarios",
        "",
        "Each row of the tables simulates datasets of *n* seeds per group. *False claims* is the share of "
        "datasets drawn under the null (no difference) in which the method claims a difference in either "
        "direction, with its Monte Carlo standard error; *power* is the share of datasets drawn with the "
        "stated effect in which it claims that the variant is higher.",
        "",
        "| scenario | null (no difference) | effect (power) |",
        "|---|---|---|",
    ]
    lines += [f"| {scenario.name} | {scenario.null} | {scenario.effect} |" for scenario in scenarios]
    lines += [
        "",
        f"## Both groups from one distribution ({simulations:,} datasets per cell)",
        "",
        f"A method keeps its promise where its false claims stay at or below 0.05 + 3 standard errors = "
        f"{bound:.3f}; rows above that are marked **over**. The percentile bootstrap's extra power is bought "
        "with its false claims.",
        "",
    ]
    lines += _table([row for row in rows if row.scenario in same], bound)
    reported = {(row.scenario, row.seeds): row for row in rows if row.method == REPORTED}
    found = [
        f"{reported[('normal', n)].power:.0%}"
        + (" of datasets" if not index else "")
        + f" at {n}"
        + (" seeds per group" if not index else "")
        for index, n in enumerate(n for n in sorted({row.seeds for row in rows}) if n > 3 and ("normal", n) in reported)
    ]
    if found:
        lines += [
            "",
            "Power is low at these sizes: the report's claim finds a shift of 1 standard deviation "
            f"(normal scenario) in {' and '.join(found)}.",
        ]
    different = [row for row in rows if row.scenario not in same]
    if different:
        rates = ", ".join(
            f"{row.false_claims:.3f} at {row.seeds} vs {row.seeds}"
            for row in different
            if row.method == REPORTED and row.seeds > 3
        )
        lines += [
            "",
            "## Equal means, unequal spread: outside the guarantee",
            "",
            "The permutation tests are exact when both variants' seeds come from one distribution. Here the "
            "means are equal but the spreads are not: the variant solves a seed or fails it outright, half and "
            "half, while every baseline seed lands near 0.5. Few seeds cannot tell this from a real "
            "difference: 1 time in 16 the variant's 5 seeds are all 1.0 or all 0.0, and any test then sees "
            "a difference. The report's claim is wrong in this scenario at a rate of "
            + (rates or "-")
            + "; the Welch interval alone would be far worse at 3 seeds, which is one reason "
            "the claim needs both. The rank test tests one distribution, not P = 1/2, and rejects too often "
            "here: read its p-value as evidence that the variants differ, not that one is better.",
            "",
        ]
        lines += _table(different, bound)
    return "\n".join(lines) + "\n"


def smallest_p_value(n_variant: int, n_baseline: int) -> float:
    """A lower bound on the permutation p-value for these seed counts, whatever the data: the observed split
    counts as at least as extreme as itself, and with equal counts so does its mirror (the groups swapped)."""
    count = math.comb(n_variant + n_baseline, n_variant)
    if count > EXACT_ARRANGEMENTS:
        return 1.0 / (1.0 + RANDOM_ARRANGEMENTS)
    return (2.0 if n_variant == n_baseline else 1.0) / count
