#!/usr/bin/env python
"""DQN + HER against ReenGAGE-DQN on bit flipping (App. G.2), plus DQN without HER; tables and curves.

    python bench/bit_flipping.py --out docs            # the run behind docs/bit_flipping.md
    python bench/bit_flipping.py --quick --out /tmp/bf # a two-minute smoke version

Protocol (every run uses configs/bit_flipping.yaml through the same runner as train.py):

1. grid: ReenGAGE-DQN for every (alpha, tau) of the grid on the selection seed;
2. selection: the (alpha, tau) with the best mean evaluation success over the run (the appendix's
   "area under the curve" criterion);
3. comparison: DQN + HER and the selected ReenGAGE-DQN on the comparison seeds (the selection seed is
   not among them, so the comparison is not biased by the selection), and DQN without HER.

Writes ``<out>/bit_flipping_n<N>.png`` (curves) and ``<out>/bit_flipping_n<N>_results.md`` (tables), and
keeps each run's folder under ``--runs-dir``; a finished run found there is reused, not retrained
(``--fresh`` retrains). Torch runs on one thread: on a shared 2-core machine two threads per process
were several times slower than one.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from reengage.experiment.config import resolve_config
from reengage.experiment.runner import CONFIG_FILE, EVALUATIONS_FILE, FINAL_MODEL, train_run

ALGO = "dqn"
SUCCESS = "eval/success_rate"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-bits", type=int, default=20, choices=(10, 20, 40), help="which configured env")
    parser.add_argument("--timesteps", type=int, default=30000, help="environment steps per run")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--taus", type=float, nargs="+", default=[0.0, 0.5, 1.0])
    parser.add_argument("--selection-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="comparison seeds")
    parser.add_argument("--no-her-seeds", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--eval-freq", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--out", default="docs", help="folder for the PNG and the results table")
    parser.add_argument("--runs-dir", default="runs/bit_flipping")
    parser.add_argument("--fresh", action="store_true", help="retrain runs already in --runs-dir")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run: n = 10, 3000 steps, 1 seed")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_bits, args.timesteps, args.alphas, args.taus = 10, 3000, [0.5], [0.0, 1.0]
        args.seeds, args.no_her_seeds, args.eval_freq, args.eval_episodes = [1], [1], 1000, 20
    for name in ("timesteps", "eval_freq", "eval_episodes", "threads"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def env_id(n_bits: int) -> str:
    return "reengage/BitFlipping-v0" if n_bits == 10 else f"reengage/BitFlipping{n_bits}-v0"


def run_name(alpha: float, tau: float | None, her: bool, seed: int) -> str:
    if alpha == 0:
        return f"{'dqn_her' if her else 'dqn_no_her'}_s{seed}"
    return f"reengage_a{alpha:g}_t{tau:g}_s{seed}"


def run_one(args, alpha: float, tau: float | None, her: bool, seed: int) -> dict:
    """Train (or reuse) one run; returns its evaluations and wall time."""
    run_dir = Path(args.runs_dir) / f"n{args.n_bits}_t{args.timesteps}" / run_name(alpha, tau, her, seed)
    assignments = [f"eval_freq={args.eval_freq}", f"eval_episodes={args.eval_episodes}"]
    if tau is not None:
        assignments.append(f"algo_kwargs.reengage_tau={tau}")
    if not her:
        assignments.append("her=null")
    config = resolve_config(env_id(args.n_bits), ALGO, alpha, args.timesteps, assignments)
    timing_file = run_dir / "wall_seconds.json"
    finished = (run_dir / FINAL_MODEL).exists() and timing_file.exists()
    if args.fresh or not finished:
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        train_run(config, seed, run_dir, "cpu", progress=False)
        timing_file.write_text(json.dumps({"wall_seconds": time.perf_counter() - start}))
    with open(run_dir / EVALUATIONS_FILE) as handle:
        rows = list(csv.DictReader(handle))
    assert (run_dir / CONFIG_FILE).exists()
    return {
        "alpha": alpha, "tau": tau, "her": her, "seed": seed,
        "steps": np.array([int(r["step"]) for r in rows]),
        "success": np.array([float(r[SUCCESS]) for r in rows]),
        "wall": json.loads(timing_file.read_text())["wall_seconds"],
    }


def auc(run: dict) -> float:
    """Mean evaluation success over the run (the appendix's selection criterion)."""
    return float(run["success"].mean())


def final(run: dict) -> float:
    return float(run["success"][-1])


def mean_std(values: list[float]) -> str:
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    grid = [(a, t) for a in args.alphas for t in args.taus]
    jobs = len(grid) + 1 + len(args.seeds) * 2 + len(args.no_her_seeds)
    bar = tqdm(total=jobs, desc=f"bit flipping n={args.n_bits}", unit="run")

    def run(alpha, tau, her, seed):
        bar.set_postfix_str(run_name(alpha, tau, her, seed))
        result = run_one(args, alpha, tau, her, seed)
        bar.update(1)
        return result

    # 1. grid on the selection seed (with the baseline on that seed for reference)
    grid_runs = [run(a, t, True, args.selection_seed) for a, t in grid]
    grid_baseline = run(0.0, None, True, args.selection_seed)
    best = max(grid_runs, key=auc)
    best_alpha, best_tau = best["alpha"], best["tau"]
    # 2. comparison on fresh seeds
    baseline = [run(0.0, None, True, s) for s in args.seeds]
    reengage = [run(best_alpha, best_tau, True, s) for s in args.seeds]
    no_her = [run(0.0, None, False, s) for s in args.no_her_seeds]
    bar.close()

    stem = f"bit_flipping_n{args.n_bits}"
    plot(out / f"{stem}.png", args, grid_runs, grid_baseline, baseline, reengage, no_her, best_alpha, best_tau)
    write_tables(out / f"{stem}_results.md", args, grid_runs, grid_baseline, baseline, reengage, no_her,
                 best_alpha, best_tau, stem)
    print(f"wrote {out / (stem + '.png')} and {out / (stem + '_results.md')}")
    return 0


def plot(path, args, grid_runs, grid_baseline, baseline, reengage, no_her, best_alpha, best_tau) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(grid_baseline["steps"], grid_baseline["success"], color="black", lw=2, label="DQN + HER")
    for r in grid_runs:
        left.plot(r["steps"], r["success"], lw=1.2, label=f"ReenGAGE a={r['alpha']:g} tau={r['tau']:g}")
    left.set_title(f"grid, seed {args.selection_seed} (selection)")

    for runs, label, color in [
        (baseline, "DQN + HER", "black"),
        (reengage, f"ReenGAGE-DQN a={best_alpha:g} tau={best_tau:g}", "tab:red"),
        (no_her, "DQN, no HER", "tab:gray"),
    ]:
        if not runs:
            continue
        steps = runs[0]["steps"]
        curves = np.stack([r["success"] for r in runs])
        mean, std = curves.mean(axis=0), curves.std(axis=0)
        right.plot(steps, mean, color=color, lw=2, label=f"{label} ({len(runs)} seeds)")
        right.fill_between(steps, mean - std, mean + std, color=color, alpha=0.2)
    right.set_title(f"comparison, seeds {', '.join(map(str, args.seeds))} (mean ± std)")
    for axis in (left, right):
        axis.set_xlabel("environment steps")
        axis.set_ylabel(f"success rate ({args.eval_episodes} greedy episodes)")
        axis.set_ylim(-0.02, 1.02)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="upper left")
    fig.suptitle(f"Bit flipping, n = {args.n_bits}, {args.timesteps} steps per run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_tables(path, args, grid_runs, grid_baseline, baseline, reengage, no_her, best_alpha, best_tau, stem):
    cmd = "python bench/bit_flipping.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Bit flipping n = {args.n_bits}: generated results",
        "",
        f"Generated by `{cmd.strip()}` on {platform.machine()} CPU ({torch.get_num_threads()} torch thread,"
        " shared 2-core machine). Success = fraction of "
        f"{args.eval_episodes} greedy evaluation episodes (fixed seeds) that reach the goal at some step;"
        f" evaluated every {args.eval_freq} steps; {args.timesteps} environment steps per run.",
        "AUC = mean success over the evaluations of a run (the appendix's selection criterion).",
        "",
        f"## Grid (seed {args.selection_seed})",
        "",
        "| agent | alpha | tau | AUC | final success | wall s |",
        "|---|---|---|---|---|---|",
        f"| DQN + HER | 0 | - | {auc(grid_baseline):.3f} | {final(grid_baseline):.2f} | {grid_baseline['wall']:.0f} |",
    ]
    for r in grid_runs:
        mark = " (selected)" if (r["alpha"], r["tau"]) == (best_alpha, best_tau) else ""
        lines.append(
            f"| ReenGAGE-DQN{mark} | {r['alpha']:g} | {r['tau']:g} | {auc(r):.3f} | {final(r):.2f} | {r['wall']:.0f} |"
        )
    lines += [
        "",
        f"## Comparison (seeds {', '.join(map(str, args.seeds))}; mean ± std over seeds)",
        "",
        "| agent | AUC | final success | per-seed final | wall s per run |",
        "|---|---|---|---|---|",
    ]
    for runs, label in [
        (baseline, "DQN + HER"),
        (reengage, f"ReenGAGE-DQN (alpha {best_alpha:g}, tau {best_tau:g})"),
        (no_her, "DQN without HER"),
    ]:
        if runs:
            per_seed = ", ".join(f"{final(r):.2f}" for r in runs)
            lines.append(
                f"| {label} | {mean_std([auc(r) for r in runs])} | {mean_std([final(r) for r in runs])} | "
                f"{per_seed} | {np.mean([r['wall'] for r in runs]):.0f} |"
            )
    lines += ["", f"![curves]({stem}.png)", ""]
    Path(path).write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
