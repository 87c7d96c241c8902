"""Statistics of an experiment's results folder: curves, best settings, CIs, differences, rliable aggregates.

    python -m reengage.experiment report results/fig8_2_reduced

Reads each finished run's ``evaluations.csv`` (columns by name), groups runs by (environment, variant,
grid point), and writes into ``RESULTS_DIR/report/``:

* ``curves.png``: one panel per environment; per variant (at its best setting) the mean (or IQM) of
  the metric over seeds with a 95% stratified bootstrap band;
* ``report.md``: for grids, every setting's area under the curve with the best one per variant marked
  (like Table G.2); final value, AUC and steps to a success threshold with 95% CIs; each variant's
  difference from the baseline with a Welch CI, a permutation p-value and whether a difference is claimed;
  probability of improvement and (over environments) aggregate IQM;
* ``summary.json``: the same numbers, for programs.

``--reference ENV=VALUE`` (with ``--reference-label``) draws a horizontal line at a number that no run of
the folder produces, such as the greedy agent's return on DriveSeek and NoisySeek
(``python -m reengage.greedy``), and lists it under the results table.

The intervals of one variant (final value, IQM, AUC, steps to threshold, curve bands, IQM over environments)
are percentile bootstrap intervals from rliable (Agarwal et al., 2021), resampling seeds within each
environment (stratified); they describe a variant and are never used to claim a difference. Comparisons
with the baseline use :mod:`reengage.experiment.statistics`: the difference of means with a Welch t interval
and an exact permutation test (a difference is claimed only where both exclude 0, :func:`ci_excludes_zero`),
and P(variant > baseline) with its permutation p-value; a comparison with fewer than 5 seeds in either group
is labelled exploratory. ``python -m reengage.experiment coverage`` measures these methods by simulation
(``docs/statistics.md``).
AUC is the mean of the metric over a run's evaluations (the paper's selection criterion, App. G.3).
The best setting is chosen on the same seeds it is reported on, which favours grids with many points.
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reengage.file_faults import make_folders

from .evaluation import LEGACY_SUCCESS, SUCCESS_EVER
from .results_folder import MANIFEST_FILE, runs_of
from .run_folder import EVALUATIONS_FILE, RUN_FILE
from .spec import point_label
from .statistics import (
    ALPHA,
    MIN_CONFIRMATORY_SEEDS,
    DifferenceTest,
    ImprovementTest,
    ci_excludes_zero,
    difference_test,
    improvement_test,
    smallest_p_value,
    stratified_improvement_test,
)

# success columns, most specific first: branch names may change, so columns are found by name
SUCCESS_COLUMNS = (SUCCESS_EVER, LEGACY_SUCCESS, "eval/success", "success_rate", "eval/is_success")
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


class ReportError(ValueError):
    """The results folder cannot be reported on; the message says why."""


@dataclass
class RunCurve:
    env_id: str
    variant: str
    point: dict[str, Any]
    seed: int
    steps: np.ndarray
    values: np.ndarray


@dataclass
class Group:
    """The runs of one (environment, variant, grid point): a seeds x evaluations matrix."""

    env_id: str
    variant: str
    point: dict[str, Any]
    seeds: list[int]
    steps: np.ndarray
    scores: np.ndarray  # (seeds, evaluations)

    @property
    def auc(self) -> np.ndarray:
        return self.scores.mean(axis=1)

    @property
    def final(self) -> np.ndarray:
        return self.scores[:, -1]

    def steps_to(self, threshold: float) -> tuple[np.ndarray, int]:
        """First evaluation step at which each seed reaches ``threshold`` (censored at the last step)."""
        reached = self.scores >= threshold
        first = np.where(reached.any(axis=1), self.steps[np.argmax(reached, axis=1)], self.steps[-1])
        return first.astype(float), int(reached.any(axis=1).sum())


# ---------------------------------------------------------------- reading


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def choose_metric(columns: list[str], requested: str | None) -> str:
    """The requested column, else the success rate under any of its known names."""
    if requested == LEGACY_SUCCESS and SUCCESS_EVER in columns:
        requested = SUCCESS_EVER  # the old name of the column (results folders made before 0.2.0 ask for it)
    if requested is not None:
        if requested not in columns:
            raise ReportError(
                f"metric {requested!r} is not a column of {EVALUATIONS_FILE}; columns: {', '.join(columns)}"
            )
        return requested
    for name in SUCCESS_COLUMNS:
        if name in columns:
            return name
    candidates = [c for c in columns if "success" in c.lower() and "final" not in c.lower()]
    if candidates:
        return candidates[0]
    raise ReportError(f"no success column in {EVALUATIONS_FILE} (columns: {', '.join(columns)}); pass --metric")


def check_results_dir(results_dir: Path) -> None:
    """ReportError unless ``results_dir`` is a folder (saying whether it is missing or a file)."""
    if not results_dir.is_dir():
        problem = "is a file, not a folder" if results_dir.exists() else "not found"
        raise ReportError(f"results folder {str(results_dir)!r} {problem}")


def load_curves(
    results_dir: Path, metric: str | None = None
) -> tuple[dict[str, Any] | None, list[RunCurve], str, list[str]]:
    """Finished runs' curves; returns (manifest, curves, metric column, ids of runs not finished)."""
    check_results_dir(results_dir)
    manifest, folders = runs_of(results_dir)
    if not folders:
        raise ReportError(f"{results_dir}: no runs found (no {MANIFEST_FILE} and no */{RUN_FILE})")
    # the experiment file's report.metric is the default; --metric overrides it
    metric = metric if metric is not None else (manifest or {}).get("metric")
    curves, missing, column = [], [], None
    for folder, identity in folders:
        if not folder.is_finished():
            missing.append(identity["run_id"])
            continue
        evaluations = folder.evaluations_file
        columns, rows = _read_csv(evaluations)
        column = column or choose_metric(columns, metric)
        if column not in columns:
            raise ReportError(f"{evaluations}: no column {column!r}; columns: {', '.join(columns)}")
        curves.append(
            RunCurve(
                identity["env_id"],
                identity["variant"],
                dict(identity.get("point") or {}),
                int(identity["seed"]),
                np.array([int(float(row["step"])) for row in rows]),
                np.array([float(row[column]) for row in rows]),
            )
        )
    if not curves:
        raise ReportError(f"{results_dir}: none of the {len(folders)} runs has finished yet")
    if all(np.isnan(curve.values).all() for curve in curves):
        raise ReportError(f"column {column!r} is empty (NaN) in every run; choose another with --metric")
    return manifest, curves, column, missing


def group_curves(curves: list[RunCurve]) -> list[Group]:
    buckets: dict[tuple[str, str, str], list[RunCurve]] = defaultdict(list)
    for curve in curves:
        buckets[(curve.env_id, curve.variant, point_label(curve.point))].append(curve)
    groups = []
    for runs in buckets.values():
        runs.sort(key=lambda run: run.seed)
        # evaluation steps all runs of the group share (the same config evaluates at the same steps)
        common = sorted(set.intersection(*(set(run.steps.tolist()) for run in runs)))
        steps = np.array(common)
        scores = np.stack([run.values[np.searchsorted(run.steps, steps)] for run in runs])
        groups.append(Group(runs[0].env_id, runs[0].variant, runs[0].point, [run.seed for run in runs], steps, scores))
    return groups


# ---------------------------------------------------------------- statistics (rliable)


def _rliable():
    try:
        from rliable import library, metrics
    except ImportError:
        raise ReportError(
            "the report needs rliable: pip install rliable (it is in the package's dependencies)"
        ) from None
    return library, metrics


def _interval(scores: dict[str, Any], func: Callable[..., np.ndarray], reps: int) -> tuple[dict, dict]:
    library, _ = _rliable()
    # rliable's stratified bootstrap draws from numpy's global generator: seed it for reproducible CIs
    np.random.seed(BOOTSTRAP_SEED)
    return library.get_interval_estimates(scores, func, reps=reps, confidence_interval_size=CONFIDENCE)


# what summary.json's "methods" says each number is
METHODS = {
    "one_variant": "95% percentile stratified bootstrap over seeds (rliable); describes a variant, claims nothing",
    "difference": "difference of means (variant - baseline) with a 95% Welch t interval; p_value: two-sided exact "
    "permutation test (random splits past 9 vs 9 seeds)",
    "excludes_zero": f"claimed only where the Welch interval excludes 0 and p_value <= {ALPHA:g} "
    "(no spread in either group: the permutation test alone)",
    "probability_of_improvement": "P(variant > baseline), ties 1/2; p_value: two-sided exact permutation test of "
    "1/2 on ranks (over environments: split within each, random splits); no interval",
    "exploratory": f"fewer than {MIN_CONFIRMATORY_SEEDS} seeds in either group",
}

# An estimate is (point, low, high); low and high are None where a group has a single seed: resampling one
# value gives the interval [x, x], which is no confidence interval.
Estimate = tuple[float, float | None, float | None]


def mean_ci(values: np.ndarray, reps: int, statistic: str = "mean") -> Estimate:
    """Point estimate and 95% bootstrap CI of the mean (or IQM) of per-seed values (no CI for one seed)."""
    _, metrics = _rliable()
    func = metrics.aggregate_mean if statistic == "mean" else metrics.aggregate_iqm
    matrix = np.asarray(values, dtype=float).reshape(-1, 1)
    if len(matrix) < 2:
        return float(func(matrix)), None, None
    point, interval = _interval({"x": matrix}, lambda s: np.array([func(s)]), reps)
    return float(point["x"][0]), float(interval["x"][0, 0]), float(interval["x"][1, 0])


def curve_band(group: Group, reps: int, aggregate: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-evaluation mean (or IQM) over seeds, with its 95% stratified bootstrap band."""
    from scipy.stats import trim_mean

    def per_step(scores: np.ndarray) -> np.ndarray:  # scores: (seeds, 1 task, steps)
        flat = scores.reshape(-1, scores.shape[-1])
        return flat.mean(axis=0) if aggregate == "mean" else trim_mean(flat, 0.25, axis=0)

    point, interval = _interval({"c": group.scores[:, None, :]}, per_step, reps)
    return point["c"], interval["c"][0], interval["c"][1]


# ---------------------------------------------------------------- report


def best_points(groups: list[Group]) -> dict[tuple[str, str], Group]:
    """Per (environment, variant), the grid point with the highest mean AUC over seeds (ties: first label)."""
    best: dict[tuple[str, str], Group] = {}
    for group in sorted(groups, key=lambda g: (g.env_id, g.variant, point_label(g.point))):
        key = (group.env_id, group.variant)
        if key not in best or group.auc.mean() > best[key].auc.mean():
            best[key] = group
    return best


def fix_settings(
    best: dict[tuple[str, str], Group], groups: list[Group], settings: dict[str, str]
) -> dict[tuple[str, str], Group]:
    """``best`` with the variants named in ``settings`` held at the given grid point (its label, as the
    report prints it, e.g. ``learning_rate=0.001``) instead of their best one: a comparison at settings chosen
    before the runs (Table G.2's, say), free of the selection on the reported seeds that "best" implies."""
    variants = sorted({group.variant for group in groups})
    chosen = dict(best)
    for variant, label in settings.items():
        if variant not in variants:
            raise ReportError(f"--setting {variant!r}: not a variant of these runs; variants: {', '.join(variants)}")
        for env_id in sorted({group.env_id for group in groups if group.variant == variant}):
            candidates = {point_label(g.point): g for g in groups if g.env_id == env_id and g.variant == variant}
            if label not in candidates:
                raise ReportError(
                    f"--setting {variant!r} {label!r}: no such setting in {env_id}; settings: "
                    f"{', '.join(sorted(candidates))}"
                )
            chosen[(env_id, variant)] = candidates[label]
    return chosen


def _fmt(estimate: Estimate, digits: int = 3) -> str:
    point, low, high = estimate
    if low is None or high is None:
        return f"{point:,.{digits}f} (1 seed, no CI)"
    if digits == 0:
        return f"{point:,.0f} [{low:,.0f}, {high:,.0f}]"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _p(p_value: float | None) -> str:
    if p_value is None:
        return "-"
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def _fmt_difference(difference: DifferenceTest) -> str:
    """The difference of means with its Welch CI, or why it has none."""
    if difference.low is not None and difference.high is not None:
        return _fmt(difference.estimate)
    if min(difference.n_variant, difference.n_baseline) < 2:
        return _fmt((difference.point, None, None))  # "(1 seed, no CI)"
    if difference.no_spread:
        return f"{difference.point:.3f} (no spread in either group, no CI)"
    return f"{difference.point:.3f} (values not finite, no CI)"


def _claim(difference: DifferenceTest) -> str:
    """ "yes (higher)", "yes (lower)" (:func:`ci_excludes_zero`), "no", or why there is no test."""
    if difference.p_value is None:
        return (
            "no CI (1 seed)" if min(difference.n_variant, difference.n_baseline) < 2 else "no test (values not finite)"
        )
    if ci_excludes_zero(difference):
        return "yes (higher)" if difference.point > 0 else "yes (lower)"
    return "no"


def _exploratory_label(difference: DifferenceTest) -> str | None:
    """ "exploratory (3 vs 3 seeds, too few for p <= 0.05)" under 5 seeds in either group, else None."""
    if not difference.exploratory:
        return None
    # (a one-seed group has no test at all, which the claim column says itself)
    too_few = difference.p_value is not None and smallest_p_value(difference.n_variant, difference.n_baseline) > ALPHA
    return f"exploratory ({difference.seeds} seeds{f', too few for p <= {ALPHA:g}' if too_few else ''})"


def _excludes_zero(difference: DifferenceTest) -> str:
    """The claim column: :func:`_claim`, prefixed with :func:`_exploratory_label` where there is one."""
    label = _exploratory_label(difference)
    return f"{label}: {_claim(difference)}" if label else _claim(difference)


def _fmt_improvement(improvement: ImprovementTest) -> str:
    if improvement.p_value is None:
        return f"{improvement.point:.2f} (1 seed, no test)"
    return f"{improvement.point:.2f} (p {'' if improvement.p_value < 0.001 else '= '}{_p(improvement.p_value)})"


def _difference_json(difference: DifferenceTest) -> dict[str, Any]:
    return {
        "difference": difference.estimate,
        "p_value": difference.p_value,
        "seeds": difference.seeds,
        "seed_counts": [difference.n_variant, difference.n_baseline],
        "exploratory": difference.exploratory,
        "excludes_zero": ci_excludes_zero(difference),
    }


def _improvement_json(improvement: ImprovementTest) -> dict[str, Any]:
    return {
        "estimate": improvement.point,
        "p_value": improvement.p_value,
        "seeds": improvement.seeds,
        "seed_counts": [improvement.n_variant, improvement.n_baseline],
        "exploratory": improvement.exploratory,
    }


def steps_label(steps: float, _position: int | None = None) -> str:
    """Tick label for a step count: 0, 500, 20k, 1.5M."""
    if abs(steps) >= 1e6:
        return f"{steps / 1e6:g}M"
    if abs(steps) >= 1e3:
        return f"{steps / 1e3:g}k"
    return f"{steps:g}"


def _plot(
    path: Path,
    envs: list[str],
    variants: list[str],
    best: dict,
    metric: str,
    reps: int,
    aggregate: str,
    references: dict[str, float] | None = None,
    reference_label: str = "reference",
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    columns = min(len(envs), 4)  # wrap many tasks (report.task_keys) into rows of four panels
    rows = -(-len(envs) // columns)
    # room below each panel for its legend (one line per variant, one for a reference line): the figure's
    # size depends on the number of variants only, so reports of one experiment compare pixel for pixel
    panel_height = 4 + 0.14 * (len(variants) + 1)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, panel_height * rows), squeeze=False)
    for axis in axes.flat[len(envs) :]:
        axis.set_visible(False)
    for axis, env_id in zip(axes.flat, envs):
        for index, variant in enumerate(variants):
            group = best.get((env_id, variant))
            if group is None:
                continue
            centre, low, high = curve_band(group, reps, aggregate)
            label = f"{variant} ({len(group.seeds)} seeds)"
            if group.point:
                label += f" [{point_label(group.point)}]"
            axis.plot(group.steps, centre, color=f"C{index}", label=label)
            axis.fill_between(group.steps, low, high, color=f"C{index}", alpha=0.2)
        if references and env_id in references:
            axis.axhline(references[env_id], color="k", ls="--", label=f"{reference_label} ({references[env_id]:g})")
        axis.set_title(env_id, fontsize=9)
        axis.set_xlabel("environment steps")
        # "150k" rather than "150000": six-digit tick labels run into each other on a 5-inch panel
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(steps_label))
        axis.set_ylabel(f"{metric} ({aggregate}, 95% bootstrap CI)")
        if "success" in metric:
            axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        # below the panel: inside it, long variant names (grid points) covered the curves and the axis label
        axis.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.17), frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def split_tasks(curves: list[RunCurve], task_keys: list[str]) -> list[RunCurve]:
    """Move the grid keys that define tasks (``report.task_keys``) from each run's point into its task name.

    ``ContinuousSeek-v0`` with point ``{env_kwargs: {d: 15, box: 3.0}, learning_rate: ...}`` and task key
    ``env_kwargs`` becomes task ``ContinuousSeek-v0 [env_kwargs=...]`` with point ``{learning_rate: ...}``:
    variants are then compared within each task, and the best setting is chosen per task.
    """
    if not task_keys:
        return curves
    grid_keys = {key for curve in curves for key in curve.point}
    unknown = [key for key in task_keys if key not in grid_keys]
    if unknown:
        raise ReportError(
            f"task key(s) {', '.join(map(repr, unknown))} are not grid keys of these runs; "
            f"grid keys: {', '.join(sorted(grid_keys)) or '(none)'}"
        )
    moved = []
    for curve in curves:
        task = {key: value for key, value in curve.point.items() if key in task_keys}
        rest = {key: value for key, value in curve.point.items() if key not in task_keys}
        env_id = f"{curve.env_id} [{point_label(task)}]" if task else curve.env_id
        moved.append(RunCurve(env_id, curve.variant, rest, curve.seed, curve.steps, curve.values))
    return moved


def build_report(
    results_dir: Path,
    threshold: float | None = None,
    metric: str | None = None,
    reps: int = 2000,
    aggregate: str = "mean",
    task_keys: list[str] | None = None,
    settings: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every number of the report, as a dictionary (``summary.json``).

    ``task_keys`` (default: the manifest's ``report.task_keys``) are grid keys that define tasks.
    ``settings`` maps variants to the grid point (its printed label) at which they are reported and compared,
    instead of their best one (:func:`fix_settings`).
    """
    manifest, curves, column, missing = load_curves(results_dir, metric)
    manifest = manifest or {}
    task_keys = list(manifest.get("task_keys") or []) if task_keys is None else task_keys
    curves = split_tasks(curves, task_keys)
    groups = group_curves(curves)
    envs = sorted({g.env_id for g in groups}, key=natural_key)
    variants = [v for v in manifest.get("variants", []) if any(g.variant == v for g in groups)]
    variants += sorted({g.variant for g in groups} - set(variants))
    baseline = manifest.get("baseline") if manifest.get("baseline") in variants else variants[0]
    threshold = threshold if threshold is not None else float(manifest.get("success_threshold", 0.5))
    is_success = "success" in column.lower()
    highest = best_points(groups)
    best = fix_settings(highest, groups, settings) if settings else highest  # the points reported

    summary: dict[str, Any] = {
        "name": manifest.get("name", results_dir.name),
        "metric": column,
        "baseline": baseline,
        "fixed_settings": dict(settings or {}),
        "threshold": threshold if is_success else None,
        "reps": reps,
        "aggregate": aggregate,
        "finished_runs": len(curves),
        "unfinished_runs": missing,
        "methods": METHODS,
        "grid": [],
        "results": [],
        "differences": [],
        "aggregate_over_envs": [],
    }
    for group in sorted(groups, key=lambda g: (envs.index(g.env_id), variants.index(g.variant), point_label(g.point))):
        summary["grid"].append(
            {
                "env_id": group.env_id,
                "variant": group.variant,
                "point": group.point,
                "seeds": group.seeds,
                "auc": mean_ci(group.auc, reps),
                "best": highest[(group.env_id, group.variant)] is group,
                "reported": best[(group.env_id, group.variant)] is group,
            }
        )
    for env_id in envs:
        for variant in variants:
            group = best.get((env_id, variant))
            if group is None:
                continue
            row: dict[str, Any] = {
                "env_id": env_id,
                "variant": variant,
                "point": group.point,
                "seeds": group.seeds,
                "final": mean_ci(group.final, reps),
                "final_iqm": mean_ci(group.final, reps, "iqm"),
                "auc": mean_ci(group.auc, reps),
                "last_step": int(group.steps[-1]),
            }
            if is_success:
                steps, reached = group.steps_to(threshold)
                row["steps_to_threshold"] = mean_ci(steps, reps)
                row["reached_threshold"] = reached
            summary["results"].append(row)
            reference = best.get((env_id, baseline))
            if variant != baseline and reference is not None:
                for name, values, base in (("auc", group.auc, reference.auc), ("final", group.final, reference.final)):
                    summary["differences"].append(
                        {
                            "env_id": env_id,
                            "variant": variant,
                            "metric": name,
                            **_difference_json(difference_test(values, base)),
                            "probability_of_improvement": _improvement_json(improvement_test(values, base)),
                        }
                    )
    # across environments: only where a variant has the same number of seeds in every environment
    for variant in variants:
        members = [best.get((env_id, variant)) for env_id in envs]
        if len(envs) < 2 or any(m is None for m in members) or len({len(m.seeds) for m in members}) != 1:
            continue
        _, metrics = _rliable()
        entry: dict[str, Any] = {"variant": variant, "envs": envs, "seeds_per_env": len(members[0].seeds)}
        for name in ("final", "auc"):
            matrix = np.stack([getattr(m, name) for m in members], axis=1)  # (seeds, envs)
            point, interval = _interval({"m": matrix}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps)  # noqa: B023 (called at once, in this iteration)
            entry[f"iqm_{name}"] = (float(point["m"][0]), float(interval["m"][0, 0]), float(interval["m"][1, 0]))
            bases = [best.get((env_id, baseline)) for env_id in envs]
            if variant != baseline and all(b is not None for b in bases) and len({len(b.seeds) for b in bases}) == 1:
                base_matrix = np.stack([getattr(b, name) for b in bases], axis=1)
                entry[f"p_improvement_{name}"] = _improvement_json(stratified_improvement_test(matrix, base_matrix))
        summary["aggregate_over_envs"].append(entry)
    summary["_plot"] = (envs, variants, best)
    return summary


def _difference_of(entry: dict[str, Any]) -> DifferenceTest:
    """A summary entry's difference back as a :class:`DifferenceTest` (the markdown reads what the JSON holds)."""
    point, low, high = entry["difference"]
    n_variant, n_baseline = entry["seed_counts"]
    return DifferenceTest(point, low, high, entry["p_value"], n_variant, n_baseline)


def _improvement_of(entry: dict[str, Any]) -> ImprovementTest:
    n_variant, n_baseline = entry["seed_counts"]
    return ImprovementTest(entry["estimate"], entry["p_value"], n_variant, n_baseline)


def _split_digits(text: str) -> list[str]:
    import re

    return re.findall(r"\d+|\D+", text)


def natural_key(text: str) -> list[tuple[int, int | str]]:
    """Sort key that orders numbers inside names by value: ContinuousSeek5 before ContinuousSeek10."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in _split_digits(text)]


def _markdown(summary: dict[str, Any], results_dir: Path) -> str:
    metric, threshold = summary["metric"], summary["threshold"]
    lines = [
        f"# Report: {summary['name']}",
        "",
        f"Written by `python -m reengage.experiment report {results_dir}` from {summary['finished_runs']} finished runs"
        f" (metric `{metric}`, read from each run's `{EVALUATIONS_FILE}`).",
        f"Intervals of one variant (final, IQM, AUC, steps): 95% percentile bootstrap over seeds (rliable, "
        f"{summary['reps']} resamples); they describe the variant and claim no difference. Differences from the "
        "baseline: 95% Welch t interval of the difference of means and a two-sided exact permutation test; a "
        f"difference is claimed (excludes 0: yes) only where the interval excludes 0 and p <= {ALPHA:g}. "
        "P(variant > baseline): ties count 1/2, with the permutation (Mann-Whitney) p-value, no interval. "
        f"A comparison with fewer than {MIN_CONFIRMATORY_SEEDS} seeds in either group is exploratory "
        "(`python -m reengage.experiment coverage`, docs/statistics.md, measures these methods). "
        "AUC = mean of the metric over a run's evaluations. Final = the last evaluation.",
    ]
    if summary["unfinished_runs"]:
        lines.append(
            f"**{len(summary['unfinished_runs'])} runs have not finished and are left out:** "
            + ", ".join(f"`{r}`" for r in summary["unfinished_runs"][:10])
            + (" ..." if len(summary["unfinished_runs"]) > 10 else "")
        )
    fixed = summary["fixed_settings"]
    if any(entry["point"] for entry in summary["grid"]):
        title = "## Best setting per variant (highest mean AUC; chosen on the seeds reported below)"
        if fixed:
            title = (
                "## Setting per variant (fixed by --setting for "
                + ", ".join(fixed)
                + "; otherwise the highest mean AUC, chosen on the seeds reported below)"
            )
        lines += [
            "",
            title,
            "",
            "| environment | variant | setting | seeds | AUC [95% CI] | reported |",
            "|---|---|---|---|---|---|",
        ]
        for entry in summary["grid"]:
            mark = ("**fixed**" if entry["variant"] in fixed else "**best**") if entry["reported"] else ""
            lines.append(
                f"| {entry['env_id']} | {entry['variant']} | {point_label(entry['point'])} | "
                f"{len(entry['seeds'])} | {_fmt(entry['auc'])} | {mark} |"
            )
    threshold_header = f" steps to {threshold:g} [95% CI] (seeds reaching it) |" if threshold is not None else ""
    chosen = any(row["point"] for row in summary["results"])
    results_title = "## Results (each variant at its best setting)"
    if fixed:
        results_title = "## Results (each variant at the setting marked above)"
    lines += [
        "",
        results_title if chosen else "## Results",
        "",
        f"| environment | variant | seeds | final, mean [95% CI] | final, IQM [95% CI] | AUC [95% CI] |{threshold_header}",
        "|---|---|---|---|---|---|" + ("---|" if threshold is not None else ""),
    ]
    for row in summary["results"]:
        cells = [
            row["env_id"],
            row["variant"],
            str(len(row["seeds"])),
            _fmt(row["final"]),
            _fmt(row["final_iqm"]),
            _fmt(row["auc"]),
        ]
        if threshold is not None:
            cells.append(
                f"{_fmt(row['steps_to_threshold'], 0)} ({row['reached_threshold']}/{len(row['seeds'])}; "
                f"a seed that never reaches it counts as {row['last_step']:,})"
            )
        lines.append("| " + " | ".join(cells) + " |")
    if summary.get("references"):
        label = summary["references"]["label"]
        lines += [
            "",
            f"Reference line in the curves ({label}; not a run of this folder):",
            "",
            f"| environment | {label} |",
            "|---|---|",
        ]
        lines += [f"| {env_id} | {value:g} |" for env_id, value in summary["references"]["values"].items()]
    if summary["differences"]:
        lines += [
            "",
            f"## Difference from the baseline ({summary['baseline']})",
            "",
            "| environment | variant | metric | seeds (variant vs baseline) | difference of means [95% Welch CI] | "
            f"permutation p | excludes 0 (Welch CI and p <= {ALPHA:g}) | P(variant > baseline) (permutation p) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for entry in summary["differences"]:
            difference = _difference_of(entry)
            improvement = entry["probability_of_improvement"]
            lines.append(
                f"| {entry['env_id']} | {entry['variant']} | {entry['metric']} | {entry['seeds']} | "
                f"{_fmt_difference(difference)} | {_p(difference.p_value)} | {_excludes_zero(difference)} | "
                f"{_fmt_improvement(_improvement_of(improvement))} |"
            )
    if summary["aggregate_over_envs"]:
        lines += [
            "",
            "## Over all environments (IQM over seeds x environments, rliable bootstrap; P(> baseline) "
            "averaged over environments, permutation p with seeds split within each environment)",
            "",
            "| variant | seeds per environment | IQM final [95% CI] | IQM AUC [95% CI] | P(> baseline), final | "
            "P(> baseline), AUC |",
            "|---|---|---|---|---|---|",
        ]
        for entry in summary["aggregate_over_envs"]:
            compared = entry.get("p_improvement_final") or entry.get("p_improvement_auc")
            seeds = str(entry["seeds_per_env"])
            if compared is not None:
                seeds = compared["seeds"] + (", exploratory" if compared["exploratory"] else "")
            p_final = (
                _fmt_improvement(_improvement_of(entry["p_improvement_final"]))
                if "p_improvement_final" in entry
                else "-"
            )
            p_auc = (
                _fmt_improvement(_improvement_of(entry["p_improvement_auc"])) if "p_improvement_auc" in entry else "-"
            )
            lines.append(
                f"| {entry['variant']} | {seeds} | {_fmt(entry['iqm_final'])} | {_fmt(entry['iqm_auc'])} | "
                f"{p_final} | {p_auc} |"
            )
    lines += ["", "![learning curves](curves.png)", ""]
    return "\n".join(lines)


def write_report(
    results_dir: Path,
    out: Path | None = None,
    threshold: float | None = None,
    metric: str | None = None,
    reps: int = 2000,
    aggregate: str = "mean",
    task_keys: list[str] | None = None,
    references: dict[str, float] | None = None,
    reference_label: str = "reference",
    settings: dict[str, str] | None = None,
) -> Path:
    """Write ``report.md``, ``curves.png`` and ``summary.json``; returns the markdown's path.

    ``references`` maps environments (panel names) to a value drawn as a dashed line labelled
    ``reference_label``; an environment that is not among the runs' raises :class:`ReportError`.
    """
    results_dir = Path(results_dir)
    out = Path(out) if out else results_dir / "report"
    summary = build_report(results_dir, threshold, metric, reps, aggregate, task_keys, settings)
    envs, variants, best = summary.pop("_plot")
    unknown = [env_id for env_id in references or {} if env_id not in envs]
    if unknown:
        raise ReportError(
            f"--reference {unknown[0]!r} is not an environment of these runs; environments: {', '.join(envs)}"
        )
    if references:
        summary["references"] = {"label": reference_label, "values": dict(references)}
    make_folders(out)  # a folder that cannot be made leaves none of its parents behind
    _plot(out / "curves.png", envs, variants, best, summary["metric"], reps, aggregate, references, reference_label)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=_jsonable))
    path = out / "report.md"
    path.write_text(_markdown(summary, results_dir))
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
