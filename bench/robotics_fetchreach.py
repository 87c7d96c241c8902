#!/usr/bin/env python
"""FetchReach-v4 sanity experiment: DDPG + HER with the baselines' recipe reaches >= 0.9 success.

    python bench/robotics_fetchreach.py [--seeds 0 1] [--alpha 0] [--timesteps 10000] \\
        [--runs runs/fetchreach] [--out docs/robotics_fetchreach.md]

Each seed is one train.py run (configs/robotics.yaml: 2 environments, normaliser, recipe; evaluation
of 10 episodes every 1,000 steps); finished runs are reused and interrupted ones resumed. The report
lists, per seed, the baselines' success rate (``eval/final_success``: the final state satisfies the
goal) at every evaluation, the first step at which it reached 0.9, and the wall-clock of the run.
The baselines report 1.0 within about 5,000 steps on FetchReach.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from reengage.experiment.compare import TIMING_FILE, run_one
from reengage.experiment.config import resolve_config
from reengage.experiment.runner import EVALUATIONS_FILE

THRESHOLD = 0.9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--alpha", type=float, default=0.0)
    parser.add_argument("--timesteps", type=int, default=None, help="default: configs/robotics.yaml (10,000)")
    parser.add_argument("--runs", default="runs/fetchreach")
    parser.add_argument("--out", default="docs/robotics_fetchreach.md")
    args = parser.parse_args(argv)

    config = resolve_config("FetchReach-v4", "ddpg", args.alpha, args.timesteps)
    tag = "ddpg" if args.alpha == 0 else f"reengage_a{args.alpha:g}"
    rows: dict[int, list[dict[str, str]]] = {}
    seconds: dict[int, str] = {}
    for seed in args.seeds:
        run_dir = Path(args.runs) / f"{tag}_s{seed}"
        run_one({"config": config, "seed": seed, "run_dir": str(run_dir)})
        with open(run_dir / EVALUATIONS_FILE) as handle:
            rows[seed] = list(csv.DictReader(handle))
        timing = run_dir / TIMING_FILE
        seconds[seed] = f"{json.loads(timing.read_text())['seconds']:.0f}" if timing.exists() else "n/a"

    steps = [row["step"] for row in rows[args.seeds[0]]]
    command = "python bench/robotics_fetchreach.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [
        f"FetchReach-v4, DDPG+HER{'' if args.alpha == 0 else f' + ReenGAGE alpha {args.alpha:g}'} with the baselines' "
        f"recipe (configs/robotics.yaml), {config['timesteps']} environment steps per seed, produced by `{command}`.",
        "Success = fraction of 10 evaluation episodes whose final state satisfies the goal (the baselines' metric).",
        "",
        "| seed | " + " | ".join(steps) + f" | first step >= {THRESHOLD} | wall-clock (s) |",
        "|---" * (len(steps) + 3) + "|",
    ]
    for seed in args.seeds:
        success = [float(row["eval/final_success"]) for row in rows[seed]]
        first = next((row["step"] for row, value in zip(rows[seed], success) if value >= THRESHOLD), "never")
        lines.append(f"| {seed} | " + " | ".join(f"{value:.1f}" for value in success) + f" | {first} | {seconds[seed]} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
