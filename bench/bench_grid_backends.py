#!/usr/bin/env python
"""Runs per hour of a small grid: the local backend against the Ray backend, side by side.

    python bench/bench_grid_backends.py --rounds 3 --workers 2

Each round trains the same grid (configs/experiments/smoke.yaml by default, or --experiment FILE) from
scratch once with each backend, in alternating order (local first in odd rounds, Ray first in even
ones), each into a fresh results folder, through the same command a user types
(``python -m reengage.experiment run``), so the time includes process start-up, imports and, for Ray,
starting the local Ray instance. Prints each measurement, the medians and the ratio Ray / local.
Both backends run ``--workers`` runs at a time with one torch thread each.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reengage.experiment.spec import ExperimentError, load_experiment  # noqa: E402


def time_grid(experiment: Path, backend: str, workers: int) -> float:
    """Wall-clock seconds of one fresh execution of the grid."""
    with tempfile.TemporaryDirectory(prefix=f"bench_{backend}_") as results:
        command = [
            sys.executable,
            "-m",
            "reengage.experiment",
            "run",
            str(experiment),
            "--results",
            results,
            "--backend",
            backend,
            "--workers",
            str(workers),
            "--progress-every",
            "3600",
        ]
        start = time.perf_counter()
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if completed.returncode != 0:
            raise SystemExit(f"{backend} backend failed (exit {completed.returncode}):\n{completed.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default=str(ROOT / "configs" / "experiments" / "smoke.yaml"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the measurements here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.workers < 1:
        print(
            f"bench_grid_backends.py: error: --rounds and --workers must be >= 1, got {args.rounds}, {args.workers}",
            file=sys.stderr,
        )
        return 2
    try:
        runs = len(load_experiment(args.experiment).runs)
    except ExperimentError as error:
        print(f"bench_grid_backends.py: error: {error}", file=sys.stderr)
        return 2
    try:
        import ray  # noqa: F401
    except ImportError:
        print('bench_grid_backends.py: error: needs Ray: pip install -e ".[ray]"', file=sys.stderr)
        return 2

    seconds: dict[str, list[float]] = {"local": [], "ray": []}
    for round_index in range(args.rounds):
        order = ("local", "ray") if round_index % 2 == 0 else ("ray", "local")
        for backend in order:
            elapsed = time_grid(Path(args.experiment), backend, args.workers)
            seconds[backend].append(elapsed)
            print(
                f"round {round_index + 1}: {backend:5s} {elapsed:7.1f} s  ({3600 * runs / elapsed:6.0f} runs/hour)",
                flush=True,
            )
    median = {backend: statistics.median(values) for backend, values in seconds.items()}
    print(
        f"\n{runs} runs per grid ({Path(args.experiment).name}), {args.workers} workers, {args.rounds} rounds, "
        f"{platform.machine()} CPU"
    )
    print("| backend | median s per grid | runs / hour | runs / hour relative to local |")
    print("|---|---|---|---|")
    for backend in ("local", "ray"):
        print(
            f"| {backend} | {median[backend]:.1f} | {3600 * runs / median[backend]:.0f} | "
            f"{median['local'] / median[backend]:.2f}x |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": runs, "workers": args.workers, "seconds": seconds}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
