"""Final success and area under the curve per group of runs, with bootstrap confidence intervals.

    python -m reengage.experiment.summary_table "DDPG+HER=runs/d15/a0_s0,runs/d15/a0_s1" \\
        "ReenGAGE 0.2=runs/d15/a0.2_s0,runs/d15/a0.2_s1" --baseline DDPG+HER

Each run folder holds ``evaluations.csv`` (written by ``train.py``). Per run: final success (the last
evaluation's ``eval/success_rate``) and AUC (mean success over all evaluations, the paper's selection
criterion). Per group: the mean over runs with a 95% percentile-bootstrap interval over seeds
(``scipy.stats.bootstrap``), and, against ``--baseline``, the AUC difference with its own interval.
With 2 or 3 seeds the intervals are wide and only indicative; with 1 seed none is given.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from scipy import stats

from .run_folder import RunFolder

METRIC = "eval/success_rate"


def run_metrics(run_dir: Path, metric: str = METRIC) -> tuple[float, float, int]:
    """``(final, auc, last_step)`` of one run from its evaluations.csv."""
    with open(RunFolder(run_dir).evaluations_file) as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise ValueError(f"{run_dir}/evaluations.csv has no evaluations")
    values = np.array([float(row[metric]) for row in rows])
    return float(values[-1]), float(values.mean()), int(float(rows[-1]["step"]))


def _interval(samples: tuple[np.ndarray, ...], statistic) -> str:  # noqa: ANN001
    if min(len(s) for s in samples) < 2:
        return "n/a"
    if all(np.ptp(s) == 0 for s in samples):
        value = statistic(*samples)
        return f"[{value:.2f}, {value:.2f}]"
    result = stats.bootstrap(samples, statistic, n_resamples=2000, confidence_level=0.95,
                             method="percentile", random_state=0, vectorized=False)
    return f"[{result.confidence_interval.low:.2f}, {result.confidence_interval.high:.2f}]"


def summary_rows(groups: dict[str, list[Path]], baseline: str | None) -> list[str]:
    """Markdown rows: one per group."""
    metrics = {label: [run_metrics(run) for run in runs] for label, runs in groups.items()}
    lines = [
        "| setting | seeds | steps | final success per seed | final (mean, 95% CI) | AUC (mean, 95% CI) "
        "| AUC - baseline (95% CI) |",
        "|---|---|---|---|---|---|---|",
    ]
    base_auc = np.array([m[1] for m in metrics[baseline]]) if baseline else None
    for label, rows in metrics.items():
        final = np.array([m[0] for m in rows])
        auc = np.array([m[1] for m in rows])
        steps = sorted({m[2] for m in rows})
        difference = ""
        if base_auc is not None and label != baseline:
            delta = auc.mean() - base_auc.mean()
            ci = _interval((auc, base_auc), lambda x, y: np.mean(x) - np.mean(y))
            difference = f"{delta:+.2f} {ci}"
        lines.append(
            f"| {label} | {len(rows)} | {'/'.join(str(s) for s in steps)} | "
            f"{', '.join(f'{v:.2f}' for v in final)} | {final.mean():.2f} {_interval((final,), np.mean)} | "
            f"{auc.mean():.2f} {_interval((auc,), np.mean)} | {difference} |"
        )
    return lines


def parse_group(text: str) -> tuple[str, list[Path]]:
    label, separator, paths = text.partition("=")
    if not separator or not label or not paths:
        raise ValueError(f"group {text!r} must look like LABEL=run_dir[,run_dir...]")
    runs = [Path(p) for p in paths.split(",") if p]
    missing = [str(p) for p in runs if not RunFolder(p).evaluations_file.exists()]
    if missing:
        raise ValueError(f"group {label!r}: no evaluations.csv in {', '.join(missing)}")
    return label, runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="+", help="LABEL=run_dir[,run_dir...] (one per setting)")
    parser.add_argument("--baseline", default=None, help="label of the group the AUC differences refer to")
    args = parser.parse_args(argv)
    try:
        groups = dict(parse_group(text) for text in args.groups)
    except ValueError as error:
        print(f"summary_table: error: {error}", file=sys.stderr)
        return 2
    if args.baseline is not None and args.baseline not in groups:
        print(f"summary_table: error: --baseline {args.baseline!r} is not a group; groups: {', '.join(groups)}",
              file=sys.stderr)
        return 2
    print("\n".join(summary_rows(groups, args.baseline)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
