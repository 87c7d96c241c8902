"""The comparisons of the experiment report: each piece against an independent computation, and by simulation,
the promise that a difference is claimed between identical variants at most 5% of the time.

The simulated bound: a method whose false-claim rate is 0.05 measures above 0.05 + 3 binomial standard errors
(0.05 + 3 sqrt(0.05 * 0.95 / SIMULATIONS) = 0.071 at 1000 datasets) in about 1 cell of 700.
"""

from __future__ import annotations

from itertools import combinations, product
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from reengage.experiment import statistics
from reengage.experiment.__main__ import main as experiment_main
from reengage.experiment.statistics import (
    BOOTSTRAP,
    RANKS,
    REPORTED,
    SCENARIOS,
    ci_excludes_zero,
    claim_bound,
    coverage_markdown,
    coverage_table,
    difference_test,
    improvement_probabilities,
    improvement_test,
    percentile_bootstrap_intervals,
    permutation_p_values,
    rank_permutation_p_values,
    stratified_improvement_test,
    welch_intervals,
)

SIMULATIONS = 1000
SEEDS = (3, 5, 10)
ONE_DISTRIBUTION = [scenario for scenario in SCENARIOS if scenario.same_distribution]


def tied_success_rates(rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """Success rates with ties at 0 and 1 and on a grid of twentieths."""
    return np.where(rng.random(size) < 0.3, 0.0, np.where(rng.random(size) < 0.3, 1.0, rng.integers(0, 21, size) / 20))


def enumerated_p(x: np.ndarray, y: np.ndarray, statistic) -> float:
    """Two-sided permutation p-value by listing every split (plain loops: the reference)."""
    pooled = np.concatenate([x, y])
    observed = abs(statistic(x, y))
    extreme = []
    for chosen in combinations(range(len(pooled)), len(x)):
        mask = np.isin(np.arange(len(pooled)), chosen)
        extreme.append(abs(statistic(pooled[mask], pooled[~mask])) >= observed - 1e-9)
    return float(np.mean(extreme))


# ---------------------------------------------------------------- the pieces


def test_welch_interval_is_scipys() -> None:
    rng = np.random.default_rng(1)
    for n1, n2 in ((3, 3), (3, 7), (10, 4)):
        x, y = rng.normal(0.5, 1.0, (6, n1)), rng.normal(0.0, 2.0, (6, n2))
        point, low, high = welch_intervals(x, y)
        reference = stats.ttest_ind(x, y, axis=1, equal_var=False).confidence_interval(0.95)
        np.testing.assert_allclose(point, x.mean(axis=1) - y.mean(axis=1))
        np.testing.assert_allclose(low, reference.low)
        np.testing.assert_allclose(high, reference.high)
    # one group without spread: Welch's degrees of freedom are the other group's n - 1
    _, low, high = welch_intervals(np.array([1.0, 1.0, 1.0]), np.array([0.2, 0.4, 0.6]))
    half = stats.t.ppf(0.975, 2) * np.std([0.2, 0.4, 0.6], ddof=1) / np.sqrt(3)
    assert (low, high) == pytest.approx((0.6 - half, 0.6 + half))


def test_permutation_p_values_match_enumeration_and_scipy() -> None:
    rng = np.random.default_rng(2)
    mean_difference = lambda a, b: a.mean() - b.mean()  # noqa: E731
    for n1, n2 in ((3, 3), (4, 6), (5, 5)):
        x, y = tied_success_rates(rng, (4, n1)), tied_success_rates(rng, (4, n2))
        p = permutation_p_values(x, y)
        for row in range(4):
            assert p[row] == pytest.approx(enumerated_p(x[row], y[row], mean_difference))
    # equal group sizes: the permutation distribution is symmetric, so scipy's two-sided p is the same test
    x, y = rng.normal(size=5), rng.normal(1.0, size=5)
    reference = stats.permutation_test(
        (x, y), mean_difference, permutation_type="independent", n_resamples=np.inf, alternative="two-sided"
    )
    assert float(permutation_p_values(x, y)) == pytest.approx(reference.pvalue)


def test_improvement_probability_and_its_rank_test() -> None:
    rng = np.random.default_rng(3)
    x, y = tied_success_rates(rng, (5, 5)), tied_success_rates(rng, (5, 6))
    pairs = (x[:, :, None] > y[:, None, :]) + 0.5 * (x[:, :, None] == y[:, None, :])
    np.testing.assert_allclose(improvement_probabilities(x, y), pairs.mean(axis=(1, 2)))
    from rliable import metrics

    assert improvement_probabilities(x[0], y[0]) == pytest.approx(
        metrics.probability_of_improvement(x[0][:, None], y[0][:, None])
    )
    probability = lambda a, b: ((a[:, None] > b[None]) + 0.5 * (a[:, None] == b[None])).mean() - 0.5  # noqa: E731
    p = rank_permutation_p_values(x, y)
    for row in range(5):
        assert p[row] == pytest.approx(enumerated_p(x[row], y[row], probability))
    # scipy's exact Mann-Whitney by permutation (it handles ties the same way), at equal group sizes
    reference = stats.mannwhitneyu(x[0], y[0, :5], method=stats.PermutationMethod(n_resamples=np.inf))
    assert float(rank_permutation_p_values(x[0], y[0, :5])) == pytest.approx(reference.pvalue)


def test_identical_groups_and_groups_without_spread() -> None:
    # every seed of both variants 1.0 (a solved task): nothing to claim, no interval, P = 1/2
    same = difference_test([1.0] * 5, [1.0] * 5)
    assert same.estimate == (0.0, None, None) and same.p_value == pytest.approx(1.0) and not ci_excludes_zero(same)
    assert improvement_test([1.0] * 5, [1.0] * 5) == statistics.ImprovementTest(0.5, 1.0, 5, 5)
    # equal values that floating point sums to a tiny nonzero variance still count as no spread
    tenths = difference_test([0.1] * 3, [0.1] * 3)
    assert tenths.low is None and not ci_excludes_zero(tenths)
    # no spread, but apart: the permutation test alone decides (2/20 at 3 vs 3: no claim; 2/252 at 5 vs 5)
    assert not ci_excludes_zero(difference_test([1.0] * 3, [0.0] * 3))
    apart = difference_test([1.0] * 5, [0.0] * 5)
    assert apart.no_spread and apart.p_value == pytest.approx(2 / 252) and ci_excludes_zero(apart)
    # one seed, or a value that is not a number: no test and no claim
    assert difference_test([0.9], [0.1, 0.2]).p_value is None
    broken = difference_test([0.9, np.nan, 0.8], [0.1, 0.2, 0.1])
    assert broken.p_value is None and not ci_excludes_zero(broken)


def test_three_seeds_each_can_never_claim() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(5.0, 0.1, (500, 3)), rng.normal(0.0, 0.1, (500, 3))
    assert permutation_p_values(x, y).min() == pytest.approx(0.1)
    assert statistics.smallest_p_value(3, 3) == pytest.approx(0.1)
    assert statistics.smallest_p_value(4, 4) == pytest.approx(2 / 70)


def test_random_splits_past_the_exact_limit_are_seeded_and_valid() -> None:
    matrix, exact = statistics.arrangements(10, 10)
    assert not exact and matrix.shape == (statistics.RANDOM_ARRANGEMENTS, 20) and (matrix.sum(axis=1) == 10).all()
    again, _ = statistics.arrangements.__wrapped__(10, 10)  # built afresh, not from the cache
    np.testing.assert_array_equal(matrix, again)
    p = float(permutation_p_values(np.arange(10.0) + 100, np.arange(10.0)))
    assert 1 / (1 + statistics.RANDOM_ARRANGEMENTS) <= p < 0.001


def test_stratified_improvement_test_agrees_with_enumeration() -> None:
    """Two environments, 3 vs 3 seeds each: all 20 x 20 joint splits against the random-split p-value."""
    x = np.array([[0.9, 0.4], [0.7, 0.6], [0.8, 0.5]])
    y = np.array([[0.6, 0.3], [0.7, 0.2], [0.5, 0.5]])
    result = stratified_improvement_test(x, y)
    per_env = [improvement_probabilities(x[:, env], y[:, env]) for env in range(2)]
    assert result.point == pytest.approx(np.mean(per_env))
    splits = []
    for env in range(2):
        pooled = np.concatenate([x[:, env], y[:, env]])
        splits.append(
            [
                float(improvement_probabilities(pooled[list(chosen)], pooled[[i for i in range(6) if i not in chosen]]))
                for chosen in combinations(range(6), 3)
            ]
        )
    averages = np.array([np.mean(pair) for pair in product(*splits)])
    exact = np.mean(np.abs(averages - 0.5) >= abs(result.point - 0.5) - 1e-9)
    error = np.sqrt(exact * (1 - exact) / statistics.RANDOM_ARRANGEMENTS)
    assert result.p_value == pytest.approx(exact, abs=4 * error + 1e-4)


def test_the_vectorised_bootstrap_is_rlibles_interval() -> None:
    """The table's old-method rows resample as the old report did (rliable's independent stratified bootstrap)."""
    from rliable import library

    # values off a common grid: resampled means on a grid have atoms that percentiles can fall either side of
    x, y = np.array([0.23, 0.91, 0.48, 0.74]), np.array([0.12, 0.37, 0.33, 0.81])
    np.random.seed(0)
    _, interval = library.get_interval_estimates(
        {"d": [x[:, None], y[:, None]]}, lambda a, b: np.array([a.mean() - b.mean()]), reps=10000
    )
    low, high = percentile_bootstrap_intervals(x[None], y[None], 10000, np.random.default_rng(0))
    assert (low[0], high[0]) == pytest.approx((interval["d"][0, 0], interval["d"][1, 0]), abs=0.02)


# ---------------------------------------------------------------- simulation


@pytest.fixture(scope="module")
def table() -> list[statistics.CoverageRow]:
    return coverage_table(SIMULATIONS, SEEDS, ONE_DISTRIBUTION, seed=11, methods=(REPORTED, RANKS))


def test_no_more_than_5_percent_false_claims_between_identical_variants(table: list[statistics.CoverageRow]) -> None:
    bound = claim_bound(SIMULATIONS)
    assert bound == pytest.approx(0.0707, abs=1e-4)
    assert len(table) == len(ONE_DISTRIBUTION) * 2 * len(SEEDS)
    for row in table:
        assert row.false_claims <= bound, row
        assert row.simulations == SIMULATIONS and 0 <= row.false_claims_error < 0.01


def test_power_is_reported_and_grows_with_seeds(table: list[statistics.CoverageRow]) -> None:
    power = {(row.scenario, row.method, row.seeds): row.power for row in table}
    for scenario in ONE_DISTRIBUTION:
        for method in (REPORTED, RANKS):
            assert power[(scenario.name, method, 3)] == 0.0  # 3 vs 3: p >= 0.1
            assert power[(scenario.name, method, 10)] > power[(scenario.name, method, 5)] > 0.05
    assert power[("normal", REPORTED, 10)] > 0.4  # a 1-standard-deviation shift, 10 seeds each


def test_the_old_percentile_bootstrap_fails_the_same_check() -> None:
    """The check above can fail: the old report's claim overshoots it with 3 seeds per group."""
    rows = coverage_table(SIMULATIONS, (3,), ONE_DISTRIBUTION[:2], seed=11, bootstrap_reps=1000, methods=(BOOTSTRAP,))
    for row in rows:
        assert row.false_claims > claim_bound(SIMULATIONS) + 3 * row.false_claims_error, row


def test_the_coverage_command_writes_the_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # a small table: the command's job is the page, the numbers are checked above
    out = tmp_path / "docs" / "statistics.md"
    assert experiment_main(["coverage", "--simulations", "40", "--seeds", "3", "4", "--out", str(out)]) == 0
    page = out.read_text()
    command = f"python -m reengage.experiment coverage --simulations 40 --seeds 3 4 --out {out}"
    assert page.startswith(f"# Statistics of the experiment report\n\nWritten by `{command}`.")
    assert capsys.readouterr().out == page
    for scenario in SCENARIOS:
        assert f"| {scenario.name} | {BOOTSTRAP} | 3 vs 3 | " in page
        assert f"| {scenario.name} | {REPORTED} | 4 vs 4 | " in page
    # seeded: the same arguments give the same page
    assert coverage_markdown(coverage_table(40, (3, 4)), command) == page
    for bad, named in (
        (["--simulations", "0"], "must be >= 1, got 0"),
        (["--seeds", "3", "1"], "must be >= 2, got 1"),
        (["--simulations", "many"], "got 'many'"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            experiment_main(["coverage", *bad])
        assert exit_info.value.code == 2 and named in capsys.readouterr().err
    assert experiment_main(["coverage", "--simulations", "10", "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().err
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert experiment_main(["coverage", "--simulations", "10", "--out", str(a_file / "statistics.md")]) == 2
    assert f"{a_file} is a file, not a folder" in capsys.readouterr().err
