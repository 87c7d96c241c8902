"""Draw the goal-gradient diagnostics and evaluation curves of several runs side by side.

    python -m reengage.studies.plot_diagnostics runs/d15/a0_s0 runs/d15/a0.2_s0 --out docs/figures/d15.png

Each run folder is one written by ``train.py`` with ``--set reengage_diagnostics=N``: the TensorBoard
scalars under ``reengage_diag/`` and ``evaluations.csv``. Curves are averaged into ``--bucket``-step bins so
runs logged at different moments line up; ``--table`` also prints the binned values as a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

from reengage.experiment.evaluation import LEGACY_SUCCESS, SUCCESS_EVER
from reengage.experiment.run_folder import EVENTS_GLOB, RunFolder
from reengage.experiment.tensorboard import read_scalars as read_event_scalars

DEFAULT_KEYS = (
    SUCCESS_EVER,
    "reengage_diag/grad_norm_critic",
    "reengage_diag/grad_norm_target",
    "reengage_diag/grad_cosine",
    "reengage_diag/masked_fraction",
    "reengage_diag/q_mean",
    "reengage_diag/q_outside_return_range",
    "reengage_diag/param_grad_ratio_term_to_td",
    "reengage_diag/action_grad_goal_grad_cosine",
    "reengage_diag/actor_goal_cosine",
    "reengage_diag/actor_goal_sign_agreement",
    "train/reengage_loss",
)


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars of a run: the TensorBoard events and evaluations.csv, as ``tag -> [(step, value)]``.

    The evaluations come from evaluations.csv (the events hold the same numbers); an older file's
    ``eval/success_rate`` column is read as ``eval/success_ever``, the name it has had since.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    if any(run_dir.glob(EVENTS_GLOB)):
        series.update(read_event_scalars(run_dir))
    evaluations = RunFolder(run_dir).evaluations_file
    if evaluations.exists():
        with open(evaluations) as handle:
            rows = list(csv.DictReader(handle))
        csv_series: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for row in rows:
            step = int(float(row["step"]))
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    csv_series[key].append((step, float(value)))
        if LEGACY_SUCCESS in csv_series:
            csv_series.setdefault(SUCCESS_EVER, csv_series[LEGACY_SUCCESS])
            del csv_series[LEGACY_SUCCESS]
        series.update(csv_series)
    return series


def binned(points: list[tuple[int, float]], bucket: int) -> dict[int, float]:
    """Mean value per ``bucket``-step bin, keyed by the bin's end step."""
    sums: dict[int, list[float]] = defaultdict(list)
    for step, value in points:
        sums[-(-step // bucket) * bucket].append(value)
    return {end: sum(values) / len(values) for end, values in sorted(sums.items())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (train.py --logdir)")
    parser.add_argument("--labels", nargs="*", default=None, help="one label per run (default: folder names)")
    parser.add_argument("--keys", nargs="*", default=list(DEFAULT_KEYS), help="scalar tags to draw")
    parser.add_argument("--bucket", type=int, default=1000, help="steps per averaging bin (default 1000)")
    parser.add_argument("--out", type=Path, default=None, help="PNG to write (default: none)")
    parser.add_argument("--table", action="store_true", help="print the binned values as Markdown tables")
    args = parser.parse_args(argv)
    missing = [str(run) for run in args.runs if not run.is_dir()]
    if missing:
        print(f"plot_diagnostics: error: not a run folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.labels and len(args.labels) != len(args.runs):
        print(f"plot_diagnostics: error: {len(args.labels)} labels for {len(args.runs)} runs", file=sys.stderr)
        return 2
    if args.bucket < 1:
        print(f"plot_diagnostics: error: --bucket must be >= 1, got {args.bucket}", file=sys.stderr)
        return 2
    labels = args.labels or [run.name for run in args.runs]
    data = {label: read_scalars(run) for label, run in zip(labels, args.runs)}

    if args.table:
        for key in args.keys:
            rows = {label: binned(series.get(key, []), args.bucket) for label, series in data.items()}
            steps = sorted({step for row in rows.values() for step in row})
            if not steps:
                continue
            print(f"\n{key}\n\n| run | " + " | ".join(str(s) for s in steps) + " |")
            print("|---" * (len(steps) + 1) + "|")
            for label, row in rows.items():
                print(f"| {label} | " + " | ".join(f"{row[s]:.3g}" if s in row else "" for s in steps) + " |")

    if args.out is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        columns = 3
        rows_n = -(-len(args.keys) // columns)
        figure, axes = plt.subplots(rows_n, columns, figsize=(5 * columns, 3.2 * rows_n), squeeze=False)
        for axis, key in zip(axes.flat, args.keys):
            for label, series in data.items():
                points = binned(series.get(key, []), args.bucket)
                if points:
                    axis.plot(list(points), list(points.values()), label=label)
            axis.set_title(key.split("/")[-1], fontsize=10)
            axis.set_xlabel("environment steps", fontsize=8)
            axis.grid(alpha=0.3)
        for axis in list(axes.flat)[len(args.keys) :]:
            axis.axis("off")
        axes.flat[0].legend(fontsize=7)
        figure.tight_layout()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(args.out, dpi=90)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
