"""Compare methods over seeds: run train.py's loop for each (method, seed), then tabulate and plot.

    python -m reengage.experiment.compare --env reengage/ContinuousSeek5-v0 --algo ddpg \\
        --alphas 0 0.2 --seeds 0 1 2 --timesteps 40000 --out docs/continuous_seek --workers 2

Each run writes its own TensorBoard folder under ``--runs``; runs already finished are reused, and a
run that was interrupted is resumed from its checkpoint. The summary (``<out>/<env>_<algo>.md`` and
``.png``) reports, per method: final success (last evaluation), area under the curve (mean success
over all evaluations, the paper's selection criterion), mean success over the second half of the run,
and mean wall-clock per environment step.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .config import resolve_config
from .runner import CONFIG_FILE, EVALUATIONS_FILE, FINAL_MODEL, train_run

TIMING_FILE = "timing.json"


def run_dir_for(runs: Path, env_id: str, algo: str, alpha: float, seed: int, tag: str = "") -> Path:
    return runs / env_id.replace("/", "_") / f"{algo}{tag}_a{alpha:g}_s{seed}"


def run_one(job: dict[str, Any]) -> Path:
    """Train one (config, seed) into its folder unless it has finished already; record wall-clock."""
    run_dir = Path(job["run_dir"])
    if (run_dir / FINAL_MODEL).exists():
        return run_dir
    import torch

    torch.set_num_threads(1)
    resume = (run_dir / CONFIG_FILE).exists() and (run_dir / "checkpoint").exists()
    if (run_dir / CONFIG_FILE).exists() and not resume:
        # a run that died before its first checkpoint: start it again
        for path in run_dir.iterdir():
            if path.is_file():
                path.unlink()
    start = time.perf_counter()
    train_run(job["config"], job["seed"], run_dir, progress=False, resume=resume)
    elapsed = time.perf_counter() - start
    with open(run_dir / TIMING_FILE, "w") as handle:
        json.dump({"seconds": elapsed, "timesteps": job["config"]["timesteps"], "resumed": resume}, handle)
    return run_dir


def read_evaluations(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(run_dir / EVALUATIONS_FILE) as handle:
        rows = list(csv.DictReader(handle))
    steps = np.array([int(row["step"]) for row in rows])
    success = np.array([float(row["eval/success_rate"]) for row in rows])
    return steps, success


def summarise(run_dirs: list[Path]) -> dict[str, Any]:
    curves = [read_evaluations(path) for path in run_dirs]
    steps = curves[0][0]
    success = np.stack([curve[1] for curve in curves])
    half = steps > steps[-1] / 2
    timings = []
    for path in run_dirs:
        timing_path = path / TIMING_FILE
        if timing_path.exists():
            timing = json.loads(timing_path.read_text())
            if not timing.get("resumed"):
                timings.append(timing["seconds"] / timing["timesteps"])
    return {
        "steps": steps,
        "success": success,
        "final": success[:, -1],
        "auc": success.mean(axis=1),
        "second_half": success[:, half].mean(axis=1),
        "ms_per_step": 1000 * float(np.mean(timings)) if timings else float("nan"),
    }


def _mean_sd(values: np.ndarray) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"


def write_section(out: Path, title: str, methods: dict[str, dict[str, Any]]) -> list[str]:
    """Plot ``<out>.png`` and return the markdown lines of one environment's table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(6, 4))
    for label, summary in methods.items():
        mean = summary["success"].mean(axis=0)
        sd = summary["success"].std(axis=0)
        axis.plot(summary["steps"], mean, label=label)
        axis.fill_between(summary["steps"], mean - sd, mean + sd, alpha=0.2)
    axis.set_xlabel("environment steps")
    axis.set_ylabel("success rate (goal ever reached)")
    axis.set_ylim(-0.02, 1.02)
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(out.with_suffix(".png"), dpi=120)
    plt.close(figure)

    lines = [
        f"### {title}",
        "",
        "| method | seeds | final success | AUC (mean success over run) | mean success, 2nd half | ms / env step |",
        "|---|---|---|---|---|---|",
    ]
    for label, summary in methods.items():
        lines.append(
            f"| {label} | {len(summary['final'])} | {_mean_sd(summary['final'])} | {_mean_sd(summary['auc'])} | "
            f"{_mean_sd(summary['second_half'])} | {summary['ms_per_step']:.1f} |"
        )
    lines += ["", f"![{title}]({out.with_suffix('.png').name})", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", nargs="+", required=True, help="one or more env ids (one section each)")
    parser.add_argument("--algo", default="ddpg")
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--timesteps", type=int, default=None)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--runs", default="runs/compare", help="folder of the individual runs")
    parser.add_argument("--out", required=True, help="report path without suffix; plots go beside it")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (one core each)")
    parser.add_argument("--checkpoint-every", type=int, default=10000)
    args = parser.parse_args(argv)
    try:
        return _compare(args, argv)
    except ValueError as error:
        print(f"compare: error: {error}", file=sys.stderr)
        return 2


def _saved_config_differences(run_dir: Path, config: dict[str, Any], seed: int) -> list[str]:
    """Keys whose value in an existing run folder differs from this command's (``timesteps`` may grow)."""
    import yaml

    if not (run_dir / CONFIG_FILE).exists():
        return []
    with open(run_dir / CONFIG_FILE) as handle:
        saved = yaml.safe_load(handle) or {}
    wanted = {**config, "seed": seed}
    return sorted(key for key in set(saved) | set(wanted) if key != "timesteps" and saved.get(key) != wanted.get(key))


def _compare(args: argparse.Namespace, argv: list[str] | None) -> int:
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    out = Path(args.out)
    jobs, sections = [], {}
    for env_id in args.env:
        groups = sections[env_id] = {}
        for alpha in args.alphas:
            config = resolve_config(
                env_id, args.algo, alpha, args.timesteps, [*args.assignments, f"checkpoint_every={args.checkpoint_every}"]
            )
            label = f"{args.algo.upper()}+HER" if alpha == 0 else f"ReenGAGE α={alpha:g}"
            groups[label] = []
            for seed in args.seeds:
                run_dir = run_dir_for(Path(args.runs), env_id, args.algo, alpha, seed)
                changed = _saved_config_differences(run_dir, config, seed)
                if changed:
                    # never reuse a run trained with other settings under this command's name
                    raise ValueError(
                        f"{run_dir} holds a run with other settings ({', '.join(changed)}); "
                        "choose another --runs folder or use python -m reengage.experiment run, which keys runs by "
                        "a hash of their configuration"
                    )
                jobs.append({"config": config, "seed": seed, "run_dir": str(run_dir)})
                groups[label].append(run_dir)

    from tqdm.auto import tqdm

    pool = ProcessPoolExecutor(max_workers=args.workers)
    try:
        list(tqdm(pool.map(run_one, jobs), total=len(jobs), desc="runs", unit="run"))
    except KeyboardInterrupt:
        # stop queued runs at once and the running ones too; their checkpoints stay for a re-launch
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list(getattr(pool, "_processes", {}).values()):
            process.terminate()
        print("compare: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    pool.shutdown()

    command = "python -m reengage.experiment.compare " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"Produced by `{command}` ({len(jobs)} runs, {args.workers} in parallel).", ""]
    for env_id, groups in sections.items():
        methods = {label: summarise(dirs) for label, dirs in groups.items()}
        plot = out.with_name(out.name + "_" + env_id.split("/")[-1])
        lines += write_section(plot, f"{env_id} ({args.algo})", methods)
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
