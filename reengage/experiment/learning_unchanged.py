"""Learning is unchanged: the fast training path against the stock SB3 path, same configs and seeds.

    python -m reengage.experiment.learning_unchanged --out docs/performance_learning \\
        [--env reengage/ContinuousSeek5-v0] [--seeds 0 1 2 3 4] [--timesteps 10000] [--workers 1]

For DDPG+HER (alpha 0) and ReenGAGE (alpha 0.2) it trains every seed with ``trainer: fast`` and with
``trainer: sb3`` (the same configuration otherwise), through the same loop as ``train.py``. Jobs run
seed by seed, so an interrupted experiment holds complete (fast, sb3) pairs; finished runs are reused
and interrupted ones resume from their checkpoints, so re-running the command continues it.
``--report-only`` writes the summary from the runs finished so far.

Written: ``<out>.md`` (table and verdict), ``<out>.json`` and one learning-curve plot per method. The
statistic is the area under the success curve (mean evaluation success over the run, the paper's
criterion); the difference fast - sb3 gets a 95% bootstrap confidence interval (scipy's percentile
bootstrap over seeds, the two groups resampled independently). Learning is unchanged when the
interval includes 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .compare import run_dir_for, run_one, summarise, write_section
from .config import resolve_config
from .runner import FINAL_MODEL

TRAINERS = ("fast", "sb3")


def auc_difference_ci(fast: np.ndarray, stock: np.ndarray, seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean AUC difference (fast - stock) and its bootstrap confidence interval ``(diff, low, high)``."""
    from scipy.stats import bootstrap

    difference = float(fast.mean() - stock.mean())
    if len(fast) < 2 or len(stock) < 2:
        return difference, float("nan"), float("nan")  # no interval from one seed
    if np.ptp(np.concatenate([fast, stock])) == 0:
        return difference, difference, difference  # every run identical: the bootstrap is degenerate
    result = bootstrap(
        (fast, stock),
        lambda x, y, axis=-1: x.mean(axis=axis) - y.mean(axis=axis),
        confidence_level=confidence,
        n_resamples=10_000,
        method="percentile",
        random_state=np.random.default_rng(seed),
    )
    return difference, float(result.confidence_interval.low), float(result.confidence_interval.high)


def plan(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, dict[str, list[Path]]]]:
    """Jobs (seed-major order) and, per method label, the run folders of each trainer."""
    jobs: list[dict[str, Any]] = []
    groups: dict[str, dict[str, list[Path]]] = {}
    configs = {}
    for alpha in args.alphas:
        label = f"{args.algo.upper()}+HER" if alpha == 0 else f"ReenGAGE α={alpha:g}"
        groups[label] = {trainer: [] for trainer in TRAINERS}
        for trainer in TRAINERS:
            configs[(alpha, trainer)] = resolve_config(
                args.env, args.algo, alpha, args.timesteps,
                [*args.assignments, f"trainer={trainer}", f"checkpoint_every={args.checkpoint_every}"],
            )
    for seed in args.seeds:
        for alpha in args.alphas:
            label = f"{args.algo.upper()}+HER" if alpha == 0 else f"ReenGAGE α={alpha:g}"
            for trainer in TRAINERS:
                run_dir = run_dir_for(Path(args.runs), args.env, args.algo, alpha, seed, tag=f"_{trainer}")
                jobs.append({"config": configs[(alpha, trainer)], "seed": seed, "run_dir": str(run_dir)})
                groups[label][trainer].append(run_dir)
    return jobs, groups


def report(args: argparse.Namespace, groups: dict[str, dict[str, list[Path]]], command: str) -> str:
    out = Path(args.out)
    lines = [f"Produced by `{command}`.", ""]
    results: dict[str, Any] = {}
    for label, by_trainer in groups.items():
        finished = {t: [d for d in dirs if (d / FINAL_MODEL).exists()] for t, dirs in by_trainer.items()}
        counts = {t: len(d) for t, d in finished.items()}
        if min(counts.values()) == 0:
            lines += [f"### {label}: not enough finished runs yet ({counts})", ""]
            results[label] = {"finished": counts}
            continue
        summaries = {f"{label}, {t} path": summarise(finished[t]) for t in TRAINERS}
        fast, stock = (summaries[f"{label}, {t} path"]["auc"] for t in TRAINERS)
        difference, low, high = auc_difference_ci(fast, stock)
        plot = out.with_name(out.name + "_" + label.split("+")[0].split(" ")[0].lower())
        lines += write_section(plot, f"{args.env} {label}: fast vs SB3 path", summaries)
        if np.isnan(low):
            verdict = "too few seeds for an interval"
        else:
            verdict = "includes 0: no detectable change" if low <= 0 <= high else "excludes 0: learning differs"
        lines += [
            f"AUC difference fast - sb3: **{difference:+.3f}**, 95% bootstrap CI [{low:+.3f}, {high:+.3f}] "
            f"({counts['fast']} vs {counts['sb3']} seeds; {verdict}).",
            "",
        ]
        results[label] = {"finished": counts, "auc_fast": fast.tolist(), "auc_sb3": stock.tolist(),
                          "auc_difference": difference, "ci_low": low, "ci_high": high}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines))
    out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="reengage/ContinuousSeek5-v0")
    parser.add_argument("--algo", default="ddpg", choices=("ddpg", "td3"))
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--timesteps", type=int, default=10_000)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--runs", default="runs/learning_unchanged", help="folder of the individual runs")
    parser.add_argument("--out", default="docs/performance_learning", help="report path without suffix")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (one core each)")
    parser.add_argument("--checkpoint-every", type=int, default=2000)
    parser.add_argument("--report-only", action="store_true", help="summarise the finished runs; train nothing")
    args = parser.parse_args(argv)
    try:
        jobs, groups = plan(args)
    except ValueError as error:
        print(f"learning_unchanged: error: {error}", file=sys.stderr)
        return 2
    given = [arg for arg in (sys.argv[1:] if argv is None else argv) if arg != "--report-only"]
    command = "python -m reengage.experiment.learning_unchanged " + " ".join(given)
    if not args.report_only:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            for done, run_dir in enumerate(pool.map(run_one, jobs), start=1):
                print(f"[{done}/{len(jobs)}] {run_dir}", flush=True)
                report(args, groups, command)  # a partial report after every run
    print(report(args, groups, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
