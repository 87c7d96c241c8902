"""Re-evaluate the finished runs of a results folder on many fresh episodes.

A run's logged final success is one evaluation of a few dozen episodes: with 50 episodes its binomial
standard error is up to 0.07, so a final-success difference between variants of a few tenths on 3 to 5
seeds can be partly evaluation noise. This command evaluates every finished run's final model on
``--episodes`` new episodes (seeds ``--seed, --seed + 1, ...``, by default far from the runs' own
evaluation seeds) and puts the two side by side, per variant and against the baseline::

    python -m reengage.experiment reevaluate results/fig8_2_reduced --episodes 1000

The success measured is the experiment's report metric (``report.metric`` in its file) when that is
``eval/success_final`` (the episode ends at the goal: the robotics files, as baselines report it), else
``eval/success_ever`` (the goal reached at some step); ``--metric`` chooses either. Results are appended run by
run to ``RESULTS_DIR/reevaluation/episodes<N>_seed<S>[_final].csv``, so an interrupted call resumes where it
stopped; the table goes to ``...csv``'s sibling ``.md`` and to stdout.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from .evaluation import SUCCESS_EVER, SUCCESS_FINAL
from .report import (
    ReportError,
    _claim,
    _exploratory_label,
    _fmt,
    _fmt_difference,
    _p,
    _read_csv,
    check_results_dir,
    choose_metric,
    mean_ci,
    natural_key,
)
from .results_folder import runs_of
from .run_folder import RunFolder
from .spec import point_label
from .statistics import ALPHA, MIN_CONFIRMATORY_SEEDS, difference_test

REEVALUATION_DIR = "reevaluation"
# far above the runs' own evaluation seeds (eval_seed defaults to 1,000,000 and counts up per episode)
DEFAULT_SEED = 10_000_000
# the success measures a final model can be re-evaluated on, and what each one counts
METRICS = {SUCCESS_EVER: "goal reached at some step", SUCCESS_FINAL: "episode ends at the goal"}


@dataclass
class Reevaluation:
    """One finished run: its logged final success and the success of its final model on new episodes."""

    run_id: str
    env_id: str
    variant: str
    point: str
    seed: int
    logged_final: float
    logged_episodes: int
    success: float
    episodes: int


def table_path(results_dir: Path, episodes: int, first_seed: int, metric: str = SUCCESS_EVER) -> Path:
    suffix = "" if metric == SUCCESS_EVER else "_final"  # success_ever keeps the name older tables have
    return results_dir / REEVALUATION_DIR / f"episodes{episodes}_seed{first_seed}{suffix}.csv"


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ReportError(f"metric {metric!r} cannot be re-evaluated; choose one of {', '.join(METRICS)}")


def _read_table(path: Path) -> dict[str, Reevaluation]:
    if not path.exists():
        return {}
    _, rows = _read_csv(path)
    types = {field.name: str(field.type) for field in fields(Reevaluation)}  # names: annotations are postponed
    converters = {"int": int, "float": float, "str": str}
    return {row["run_id"]: Reevaluation(**{key: converters[types[key]](row[key]) for key in types}) for row in rows}


def _append(path: Path, row: Reevaluation) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[field.name for field in fields(Reevaluation)])
        if new:
            writer.writeheader()
        writer.writerow(asdict(row))


def evaluate_run(run_dir: Path, episodes: int, first_seed: int, metric: str = SUCCESS_EVER) -> float:
    """``metric`` (success ever or final success) of the run's final model over ``episodes`` deterministic
    episodes."""
    from .evaluation import evaluate_goal_policy
    from .run_folder import make_run_env

    config, model = RunFolder(run_dir).load_model()
    env = make_run_env(config, noise_seed=first_seed)
    try:
        result = evaluate_goal_policy(model, env, episodes, first_seed)
    finally:
        env.close()
    if not result.reports_success:
        raise ReportError(f"{config['env_id']} does not report success; re-evaluation compares success rates")
    return float(result.final_success if metric == SUCCESS_FINAL else result.success_rate)


def reevaluate_runs(
    results_dir: Path,
    episodes: int,
    first_seed: int = DEFAULT_SEED,
    progress: Callable[[str], None] = print,
    metric: str = SUCCESS_EVER,
) -> tuple[list[Reevaluation], list[str]]:
    """Every finished run of the folder re-evaluated on ``metric`` (rows already in the table are reused);
    returns (rows, ids of runs not finished)."""
    if episodes < 1:
        raise ReportError(f"episodes must be >= 1, got {episodes}")
    check_metric(metric)
    check_results_dir(results_dir)
    _, folders = runs_of(results_dir)
    if not folders:
        raise ReportError(f"{results_dir}: no runs found")
    path = table_path(results_dir, episodes, first_seed, metric)
    done = _read_table(path)
    rows, missing = [], []
    for folder, identity in folders:
        run_id = identity["run_id"]
        if not folder.is_finished():
            missing.append(run_id)
            continue
        if run_id not in done:
            columns, logged = _read_csv(folder.evaluations_file)
            # the logged value of the same measure (success_ever under any of its older column names)
            column = choose_metric(columns, None if metric == SUCCESS_EVER else metric)
            row = Reevaluation(
                run_id,
                identity["env_id"],
                identity["variant"],
                point_label(identity.get("point") or {}),
                int(identity["seed"]),
                float(logged[-1][column]),
                int(folder.read_config()["eval_episodes"]),
                evaluate_run(folder.path, episodes, first_seed, metric),
                episodes,
            )
            _append(path, row)
            done[run_id] = row
            progress(
                f"{run_id}: logged final {row.logged_final:.2f} ({row.logged_episodes} episodes), "
                f"re-evaluated {row.success:.3f} ({episodes} episodes)"
            )
        rows.append(done[run_id])
    if not rows:
        raise ReportError(f"{results_dir}: none of the {len(folders)} runs has finished yet")
    return rows, missing


def summary_markdown(
    rows: list[Reevaluation], baseline: str | None, reps: int = 2000, metric: str = SUCCESS_EVER
) -> str:
    """Per (environment, grid point, variant): logged and re-evaluated final success (95% bootstrap CIs over
    seeds), and the difference from the baseline for both (95% Welch CI, permutation p-value and the claim of
    :func:`~reengage.experiment.statistics.ci_excludes_zero`, exploratory under 5 seeds in either group)."""
    groups: dict[tuple[str, str], dict[str, list[Reevaluation]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[(row.env_id, row.point)][row.variant].append(row)
    logged_n = sorted({row.logged_episodes for row in rows})
    episodes = rows[0].episodes
    lines = [
        f"Final success per run ({metric}: {METRICS[metric]}): the run's own last evaluation "
        f"({'/'.join(map(str, logged_n))} episodes) and its final model re-evaluated on {episodes} new episodes. "
        f"Means over seeds with 95% percentile bootstrap CIs (rliable), which describe a variant and claim no "
        f"difference. Differences from the baseline: difference of means with a 95% Welch t CI and a two-sided "
        f"exact permutation p-value; a difference is claimed (excludes 0: yes) only where the CI excludes 0 and "
        f"p <= {ALPHA:g}; a comparison with fewer than {MIN_CONFIRMATORY_SEEDS} seeds in either group is "
        f"exploratory (docs/statistics.md).",
        "",
        "| environment | variant | seeds (vs baseline) | logged final | re-evaluated | logged - baseline | "
        "re-evaluated - baseline | permutation p (logged / re-evaluated) | excludes 0 (logged / re-evaluated) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (env_id, point), variants in sorted(groups.items(), key=lambda item: [natural_key(part) for part in item[0]]):
        where = env_id + (f" ({point})" if point != "default" else "")
        base = variants.get(baseline) if baseline else None
        for variant, runs in sorted(variants.items(), key=lambda item: (item[0] != baseline, item[0])):
            logged = np.array([run.logged_final for run in runs])
            fresh = np.array([run.success for run in runs])
            seeds = str(len(runs))
            cells = [_fmt(mean_ci(logged, reps)), _fmt(mean_ci(fresh, reps))]
            if base is not None and variant != baseline:
                logged_diff = difference_test(logged, np.array([run.logged_final for run in base]))
                fresh_diff = difference_test(fresh, np.array([run.success for run in base]))
                seeds = logged_diff.seeds
                cells += [
                    _fmt_difference(logged_diff),
                    _fmt_difference(fresh_diff),
                    f"{_p(logged_diff.p_value)} / {_p(fresh_diff.p_value)}",
                ]
                # one label for the pair (both come from the same runs): "exploratory (4 vs 4 seeds): no / yes (higher)"
                label = _exploratory_label(logged_diff)
                claims = f"{_claim(logged_diff)} / {_claim(fresh_diff)}"
                cells.append(f"{label}: {claims}" if label else claims)
            else:
                cells += ["-", "-", "-", "-"]
            cells = [where, variant, seeds] + cells
            lines.append("| " + " | ".join(cells) + " |")
    pooled = float(np.mean([row.logged_final for row in rows]))
    for n in logged_n:
        lines.append("")
        lines.append(
            f"Binomial standard error of one {n}-episode evaluation: {math.sqrt(0.25 / n):.3f} at "
            f"success 0.5 (the worst case), {math.sqrt(pooled * (1 - pooled) / n):.3f} at this "
            f"folder's mean logged final success {pooled:.2f}."
        )
    return "\n".join(lines) + "\n"
