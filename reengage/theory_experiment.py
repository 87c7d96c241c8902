"""Measure the sample complexity claims of Propositions 8.1 and 8.2 (Sec. 8.6.2, App. G.1).

For each proposition (dense / sparse theory class), loss (standard TD / ReenGAGE), dimension d and seed,
the smallest replay-set size N at which training recovers the hidden rotation U is found by doubling
then bisection over nested replay sets (the first N rows of one pool of transitions in general
position), so success is monotone in N up to optimisation luck. Recovery means: the held-out error
``max_i ||(U~ - U) a_i||`` over 1000 random unit actions is below ``--tol``.

Each probe is also classified: ``info`` when training fitted the replay set exactly (loss below the
fit tolerance) yet missed U -- another rotation explains the data, a failure of information -- and
``opt`` when no restart fitted it exactly, a failure of optimisation.

Alongside, the local identifiability threshold N_local is found by bisection on the rank of the
Hessian of the training loss at the true U (a zero-residual point, so the Hessian is 2 J^T J):
full rank d(d-1)/2 means no direction of SO(d) leaves the loss at zero to second order.

    python -m reengage.theory_experiment --out docs/theory

writes ``runs.csv`` (every search), ``probes.csv`` (every fit), ``summary.md`` (table and slopes) and
``sample_complexity.png`` (log-log plot) under ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from reengage.envs import TheoryDenseEnv, TheorySparseEnv
from reengage.theory import (
    TheoryModel,
    fit_rotation,
    reengage_loss,
    rotation_error,
    sample_transitions,
    td_loss,
)

PROPOSITIONS = {"8.1": ("dense", TheoryDenseEnv), "8.2": ("sparse", TheorySparseEnv)}


@dataclass
class Probe:
    proposition: str
    loss: str
    d: int
    seed: int
    n: int
    success: bool
    failure: str  # "", "info" or "opt"
    train_loss: float
    error: float
    restarts_used: int
    seconds: float


@dataclass
class Run:
    proposition: str
    loss: str
    d: int
    seed: int
    n_train: int  # smallest N recovering U; -1 if none up to the cap; 0 if the search was not run
    n_local: int  # smallest N with a full-rank Hessian at the true U
    probes: int
    opt_failures: int
    info_failures: int
    seconds: float


def held_out_actions(d: int, seed: int, count: int = 1000) -> torch.Tensor:
    generator = torch.Generator().manual_seed(10_000 + seed)
    return torch.nn.functional.normalize(torch.randn(count, d, generator=generator, dtype=torch.float64), dim=-1)


def hessian_rank_at_truth(kind: str, batch, loss: str, truth: torch.Tensor, gamma: float, alpha: float) -> int:
    """Rank of the Hessian of the training loss in the rotation's chart at ``U~ = U``."""
    model = TheoryModel(kind, truth, gamma)
    theta = torch.zeros_like(model.estimate.generator, requires_grad=True)
    with model.evaluated_at(model.estimate.second_order_chart(theta)):
        value = td_loss(model, batch) if loss == "td" else reengage_loss(model, batch, alpha)
    (grad,) = torch.autograd.grad(value, theta, create_graph=True)
    eye = torch.eye(theta.numel(), dtype=theta.dtype)
    hessian = torch.autograd.grad(grad, theta, grad_outputs=eye, is_grads_batched=True)[0].detach()
    eigenvalues = torch.linalg.eigvalsh((hessian + hessian.T) / 2.0)
    return int((eigenvalues > 1e-9 * eigenvalues.abs().max().clamp_min(1e-300)).sum())


def bisect_smallest(predicate, cap: int) -> tuple[int, int]:
    """Smallest N in [1, cap] with ``predicate(N)`` (assumed monotone): doubling, then bisection.

    Returns (N, probes); N = -1 when even ``cap`` fails.
    """
    probes, n, last_fail = 0, 1, 0
    while True:
        probes += 1
        if predicate(n):
            break
        last_fail = n
        if n >= cap:
            return -1, probes
        n = min(2 * n, cap)
    low, high = last_fail, n
    while high - low > 1:
        mid = (low + high) // 2
        probes += 1
        if predicate(mid):
            high = mid
        else:
            low = mid
    return high, probes


def run_one(
    proposition: str, loss: str, d: int, seed: int, args, probe_log: list[Probe], bar, train: bool = True
) -> Run:
    kind, env_cls = PROPOSITIONS[proposition]
    env = env_cls(d=d, rotation_seed=seed)
    truth = torch.as_tensor(env.U)
    dim = d * (d - 1) // 2
    cap = 4 * (dim + d) + 8  # well above 2 d(d-1)/2, the sparse TD count
    pool = sample_transitions(env, cap, seed=seed)
    actions = held_out_actions(d, seed)
    start = time.perf_counter()
    cache: dict[int, bool] = {}

    def recovers(n: int) -> bool:
        if n in cache:
            return cache[n]
        t0 = time.perf_counter()
        fit = fit_rotation(
            kind,
            pool.subset(slice(0, n)),
            loss,
            gamma=args.gamma,
            alpha=args.alpha,
            restarts=args.restarts,
            loss_tol=args.fit_tol,
            seed=1000 * seed + n,
        )
        error = rotation_error(fit.rotation, truth, actions)
        success = error < args.tol
        failure = "" if success else ("info" if fit.converged else "opt")
        probe_log.append(
            Probe(
                proposition,
                loss,
                d,
                seed,
                n,
                success,
                failure,
                fit.loss,
                error,
                fit.restarts_used,
                time.perf_counter() - t0,
            )
        )
        bar.set_postfix_str(f"P{proposition} {loss} d={d} s={seed} N={n} {'ok' if success else failure}")
        cache[n] = success
        return success

    # n_train = 0: training search not run at this d (compute budget), only N_local measured
    n_train, probes = bisect_smallest(recovers, cap) if train else (0, 0)

    def locally_identified(n: int) -> bool:
        return hessian_rank_at_truth(kind, pool.subset(slice(0, n)), loss, truth, args.gamma, args.alpha) == dim

    n_local, _ = bisect_smallest(locally_identified, cap) if dim > 0 else (0, 0)
    mine = [p for p in probe_log if (p.proposition, p.loss, p.d, p.seed) == (proposition, loss, d, seed)]
    return Run(
        proposition,
        loss,
        d,
        seed,
        n_train,
        n_local,
        probes,
        sum(p.failure == "opt" for p in mine),
        sum(p.failure == "info" for p in mine),
        time.perf_counter() - start,
    )


def fit_slope(ds: list[int], ns: list[int]) -> float:
    """Least-squares slope of log N against log d."""
    x, y = np.log(np.asarray(ds, dtype=float)), np.log(np.asarray(ns, dtype=float))
    return float(np.polyfit(x, y, 1)[0])


def counts(proposition: str, loss: str, d: int) -> int:
    """The exact-identification counts from App. G.1 for these replay sets (rotations, SO(d)).

    Gradient loss: U a_i known for d-1 independent actions pins U in SO(d). TD loss: one scalar per
    transition against d(d-1)/2 unknowns. Sparse: only the even rows (acting phase) inform.
    """
    per = d - 1 if loss == "reengage" else d * (d - 1) // 2
    return per if proposition == "8.1" else max(2 * per - 1, 1)


def summarise(runs: list[Run], out: Path, args, elapsed: float) -> str:
    lines = [
        "# Sample complexity of Propositions 8.1 and 8.2 (measured)",
        "",
        f"Command: `python -m reengage.theory_experiment --out {args.out} --dims {' '.join(map(str, args.dims))} "
        f"--seeds {args.seeds} --losses {' '.join(args.losses)} --propositions {' '.join(args.propositions)} --train-dims {' '.join(map(str, args.train_dims))}`; 2-core CPU, {elapsed / 60:.1f} min.",
        f"Recovery: max over 1000 held-out unit actions of ||(U~ - U) a|| < {args.tol:g}; exact fit: training loss "
        f"< {args.fit_tol:g}; gamma = {args.gamma}, alpha = {args.alpha}, {args.restarts} restarts (L-BFGS then damped Newton).",
        "",
        "| Prop. | loss | d | N_train per seed | N_local per seed | counts of App. G.1 | opt. failures / info. failures (all probes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for proposition in PROPOSITIONS:
        for loss in ("reengage", "td"):
            for d in args.dims:
                group = [r for r in runs if (r.proposition, r.loss, r.d) == (proposition, loss, d)]
                if not group:
                    continue
                trained = ", ".join(str(r.n_train) if r.n_train else "not run" for r in group)
                lines.append(
                    f"| {proposition} | {loss} | {d} | {trained} | "
                    f"{', '.join(str(r.n_local) for r in group)} | {counts(proposition, loss, d)} | "
                    f"{sum(r.opt_failures for r in group)} / {sum(r.info_failures for r in group)} |"
                )
    lines += [
        "",
        "Fitted slopes of log N against log d (least squares over all seeds):",
        "",
        "| Prop. | loss | slope N_train (all d) | slope N_train (d >= 8) | slope N_local (all d) | slope of the counts (all d) |",
        "|---|---|---|---|---|---|",
    ]
    for proposition in PROPOSITIONS:
        for loss in ("reengage", "td"):
            group = [r for r in runs if (r.proposition, r.loss) == (proposition, loss) and r.n_train > 0]
            every = [r for r in runs if (r.proposition, r.loss) == (proposition, loss)]
            if len({r.d for r in group}) < 2:
                continue
            big = [r for r in group if r.d >= 8]
            slope_big = (
                f"{fit_slope([r.d for r in big], [r.n_train for r in big]):.2f}"
                if len({r.d for r in big}) >= 2
                else "n/a"
            )
            lines.append(
                f"| {proposition} | {loss} | {fit_slope([r.d for r in group], [r.n_train for r in group]):.2f} | {slope_big} | "
                f"{fit_slope([r.d for r in every], [r.n_local for r in every]):.2f} | "
                f"{fit_slope(sorted({r.d for r in every}), [counts(proposition, loss, d) for d in sorted({r.d for r in every})]):.2f} |"
            )
    text = "\n".join(lines) + "\n"
    (out / "summary.md").write_text(text)
    return text


def plot(runs: list[Run], out: Path, dims: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    grid = np.array(sorted(dims), dtype=float)
    for ax, proposition in zip(axes, PROPOSITIONS):
        for loss, colour, label in (("reengage", "tab:blue", "ReenGAGE loss"), ("td", "tab:red", "standard TD loss")):
            group = [r for r in runs if (r.proposition, r.loss) == (proposition, loss) and r.n_train > 0]
            if not group:
                continue
            ax.scatter([r.d for r in group], [r.n_train for r in group], color=colour, alpha=0.6, s=22)
            medians = [np.median([r.n_train for r in group if r.d == d]) for d in sorted({r.d for r in group})]
            slope = (
                fit_slope([r.d for r in group], [r.n_train for r in group])
                if len({r.d for r in group}) > 1
                else float("nan")
            )
            ax.plot(
                sorted({r.d for r in group}), medians, color=colour, marker="o", label=f"{label}: slope {slope:.2f}"
            )
            local_only = [r for r in runs if (r.proposition, r.loss) == (proposition, loss) and r.n_train == 0]
            if local_only:
                ax.scatter(
                    [r.d for r in local_only],
                    [r.n_local for r in local_only],
                    facecolors="none",
                    edgecolors=colour,
                    s=40,
                    label=f"{label}: N_local only (training search not run)",
                )
            ax.plot(
                grid,
                [max(counts(proposition, loss, int(d)), 1) for d in grid],
                color=colour,
                ls="--",
                lw=1,
                label=f"{label}: parameter count of App. G.1",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log", base=2)
        ax.set_xlabel("d")
        ax.set_title(f"Proposition {proposition} ({PROPOSITIONS[proposition][0]} class)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("smallest replay set N recovering U")
    fig.tight_layout()
    fig.savefig(out / "sample_complexity.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/theory"))
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--train-dims",
        type=int,
        nargs="+",
        default=[2, 4, 8, 16],
        help="dims at which the training search runs (other dims: N_local only; near the threshold one fit "
        "at d=32 takes over a minute on 2 cores, the search a dozen fits)",
    )
    parser.add_argument("--losses", nargs="+", default=["reengage", "td"], choices=["reengage", "td"])
    parser.add_argument("--propositions", nargs="+", default=list(PROPOSITIONS), choices=list(PROPOSITIONS))
    parser.add_argument("--tol", type=float, default=1e-4, help="held-out recovery tolerance")
    parser.add_argument("--fit-tol", type=float, default=1e-20, help="training loss counted as an exact fit")
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--alpha", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if any(d < 2 for d in args.dims):
        raise ValueError(f"--dims must all be >= 2 (SO(1) has nothing to learn), got {args.dims}")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    jobs = [
        (p, loss, d, s)
        for p in args.propositions
        for loss in args.losses
        for d in sorted(args.dims)
        for s in range(args.seeds)
    ]
    runs: list[Run] = []
    probe_log: list[Probe] = []
    start = time.perf_counter()
    with tqdm(jobs, desc="searches", unit="search") as bar:
        for proposition, loss, d, seed in bar:
            train = d in args.train_dims
            runs.append(run_one(proposition, loss, d, seed, args, probe_log, bar, train))
            # written as we go so that a cut-off run still leaves its data
            for name, rows in (("runs.csv", runs), ("probes.csv", probe_log)):
                if not rows:
                    continue
                with open(args.out / name, "w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(asdict(rows[0])))
                    writer.writeheader()
                    writer.writerows(asdict(r) for r in rows)
    text = summarise(runs, args.out, args, time.perf_counter() - start)
    plot(runs, args.out, args.dims)
    print(text)


if __name__ == "__main__":
    main()
