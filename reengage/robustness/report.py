"""The docs/robustness.md experiment, in one command:

    python -m reengage.robustness.report --out docs/robustness

Trains four small agents (a few minutes on a 2-core CPU): TD3 on dense ContinuousSeek (d = 5, goal tolerance 0.5)
without noise and with Gaussian observation noise, and DQN on bit flipping with the goal fixed at all ones (6 bits)
without noise and with deterministic ablation; then certifies each with ``python -m reengage.certify``'s code and
writes ``results.md`` (tables), ``results.json`` and the PNG plots under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from reengage.noise_wrapper import wrap_with_noise
from reengage.observation_noise import SmoothingConfig

from .cli import build_parser, run
from .smoothing import save_smoothed

CS_ENV, CS_KW = "reengage/ContinuousSeekDense-v0", {"d": 5, "tolerance": 0.5}
BF_ENV, BF_KW = "reengage/BitFlippingFixed-v0", {"n_bits": 6}
SIGMA, GROUPS = 0.1, 3


def _train(name: str, out: Path, steps: int, seed: int) -> tuple[Path, float]:
    from stable_baselines3 import DQN, TD3

    import reengage.envs  # noqa: F401

    t0 = time.perf_counter()
    if name.startswith("cs"):
        env = gym.make(CS_ENV, **CS_KW)
        cfg = SmoothingConfig(sigma=SIGMA)
        env = wrap_with_noise(env, cfg if name.endswith("noise") else None, seed=seed)
        model = TD3(
            "MultiInputPolicy",
            env,
            learning_rate=1e-3,
            batch_size=256,
            learning_starts=1000,
            gamma=0.9,
            buffer_size=100_000,
            policy_kwargs={"net_arch": [256, 256]},
            seed=seed,
            device="cpu",
        )
    else:
        env = gym.make(BF_ENV, **BF_KW)
        cfg = SmoothingConfig(kind="deterministic_ablation", groups=GROUPS)
        env = wrap_with_noise(env, cfg if name.endswith("noise") else None, seed=seed)
        model = DQN(
            "MultiInputPolicy",
            env,
            learning_rate=1e-3,
            batch_size=128,
            learning_starts=1000,
            gamma=0.9,
            exploration_fraction=0.3,
            target_update_interval=500,
            buffer_size=100_000,
            policy_kwargs={"net_arch": [256, 256]},
            seed=seed,
            device="cpu",
        )
    model.learn(steps, progress_bar=False)
    seconds = time.perf_counter() - t0
    env_id, env_kwargs = (CS_ENV, CS_KW) if name.startswith("cs") else (BF_ENV, BF_KW)
    path = save_smoothed(
        model,
        out / name,
        cfg,
        seed=seed,
        env_id=env_id,
        env_kwargs=env_kwargs,
        trained_with_noise=name.endswith("noise"),
        train_seconds=seconds,
        train_steps=steps,
    )
    return path, seconds


def _success_rates(name: str, model_path: Path, episodes: int, seed: int) -> dict[str, float]:
    """Clean success of the base policy and of the smoothed policy (same episodes: same env seeds)."""
    import reengage.envs  # noqa: F401

    from .episode import run_episodes
    from .smoothing import load_smoothed

    env_id, kw = (CS_ENV, CS_KW) if name.startswith("cs") else (BF_ENV, BF_KW)
    smoothed = load_smoothed(model_path, seed=seed)
    base = smoothed.adapter

    class _Base:
        def predict(self, obs: Any, deterministic: bool = True) -> tuple[Any, None]:
            out = base.actions(
                smoothed.batch_tensors(smoothed.as_dict(obs), smoothed.flat_state(smoothed.as_dict(obs))[None])
            )
            return (int(out[0]) if base.discrete else out[0]), None

    # Gaussian: policy smoothing (fresh noise each step); deterministic ablation: the exact majority vote
    acting = smoothed
    _, s_base = run_episodes(_Base(), gym.make(env_id, **kw), episodes, seed=seed + 7)
    _, s_smooth = run_episodes(acting, gym.make(env_id, **kw), episodes, seed=seed + 7)
    return {"base_success": float(s_base.mean()), "smoothed_success": float(s_smooth.mean()), "episodes": episodes}


def _certify(name: str, model: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    common = ["--model", str(model), "--out", str(out / name), "--seed", str(args.seed), "--states", str(args.states)]
    if name.startswith("cs"):
        extra = [
            "--env",
            CS_ENV,
            "--env-kwargs",
            json.dumps(CS_KW),
            "--n",
            "10000",
            "--alpha",
            "0.001",
            "--tolerance",
            "0.25",
            "--eps",
            "0.01,0.02,0.05",
            "--episodes",
            str(args.episodes),
            "--budgets",
            "0,0.05,0.1,0.15,0.2,0.3",
        ]
    else:
        extra = ["--env", BF_ENV, "--env-kwargs", json.dumps(BF_KW), "--eps", "1,2"]
    return run(build_parser().parse_args(common + extra))


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.{digits}f}"


def tables(results: dict[str, dict[str, Any]], train_s: dict[str, float]) -> str:
    lines = [
        "| agent | trained with noise | train s | clean success: base / smoothed | per-state certificate | "
        "abstained | median radius | s / state | certify run s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, rep in results.items():
        ps = rep["per_state"]
        sr = rep["success_rates"]
        lines.append(
            f"| {name} | {'yes' if name.endswith('noise') else 'no'} | {train_s.get(name, float('nan')):.0f} | "
            f"{sr['base_success']:.2f} / {sr['smoothed_success']:.2f} | "
            f"{ps['kind']} | {ps['abstained']}/{len(ps['radii'])} | {_fmt(ps['median_radius'])} | "
            f"{ps['seconds_per_state']:.3f} | {rep['runtime_seconds']:.0f} |"
        )
    lines += [
        "",
        "Population estimates (one state per independent episode; intervals at 1 - eta = 95%; robust lower = CP "
        "lower - per-state alpha, a 95% bound; attack broke = fraction of CONFIRMED breaks, an estimate; robust "
        "upper = a 95% bound: CP upper at eta/2 of the unbroken states, each break confirmed by a test at "
        "eta/(2N), or CP at eta when the attack's decisions are exact):",
        "",
        "| agent | eps | certified fraction | Hoeffding | Clopper-Pearson | robust fraction >= | attack broke | "
        "robust fraction <= |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rep in results.items():
        for p in rep["population"]:
            lines.append(
                f"| {name} | {p['eps']} | {p['certified_fraction']:.3f} | [{p['hoeffding'][0]:.3f}, {p['hoeffding'][1]:.3f}] | "
                f"[{p['clopper_pearson'][0]:.3f}, {p['clopper_pearson'][1]:.3f}] | {p['robust_lower']:.3f} | "
                f"{_fmt(p['attack_success_fraction'])} | {_fmt(p['attack_robust_upper'])} |"
            )
    eps = [(n, r["episode"]) for n, r in results.items() if "budgets" in r["episode"]]
    if eps:
        budgets = eps[0][1]["budgets"]
        ranges = sorted({f"{ep['return_range']} ({ep.get('return_range_source')})" for _, ep in eps})
        lines += [
            "",
            f"Episode certificates (policy smoothing, sigma = {SIGMA:.2f}; success and return each at alpha = 0.025, "
            f"jointly 95%; return range {'; '.join(ranges)}):",
            "",
            "| agent | clean smoothed success | clean mean return | " + " | ".join(f"B={b:g}" for b in budgets) + " |",
            "|---|---|---|" + "---|" * len(budgets),
        ]
        for name, ep in eps:
            lines.append(
                f"| {name} success >= | {ep['success_rate']:.3f} | {ep['mean_return']:.2f} | "
                + " | ".join(f"{v:.3f}" for v in ep["certified_success"])
                + " |"
            )
            if ep["certified_return"] is not None:
                lines.append(
                    f"| {name} return >= | | | " + " | ".join(f"{v:.2f}" for v in ep["certified_return"]) + " |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/robustness")
    p.add_argument("--cs-steps", type=int, default=5000)
    p.add_argument("--bf-steps", type=int, default=10000)
    p.add_argument("--states", type=int, default=30)
    p.add_argument("--episodes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default="runs/robustness_models", help="where the trained models are saved")
    p.add_argument("--skip-train", action="store_true", help="reuse the models under --models")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    models = Path(args.models)
    models.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    names = ["cs_clean", "cs_noise", "bf_clean", "bf_noise"]
    train_s: dict[str, float] = {}
    results: dict[str, dict[str, Any]] = {}
    t_all = time.perf_counter()
    for name in names:
        steps = args.cs_steps if name.startswith("cs") else args.bf_steps
        model = models / f"{name}.zip"
        if not (args.skip_train and model.exists()):
            model, train_s[name] = _train(name, models, steps, args.seed)
            print(f"trained {name} in {train_s[name]:.0f} s", flush=True)
        else:
            from reengage.observation_noise import load_sidecar

            train_s[name] = float(load_sidecar(model)[1].get("train_seconds", float("nan")))
        results[name] = _certify(name, model, out, args)
        results[name]["success_rates"] = _success_rates(name, model, args.episodes, args.seed)
        print(f"certified {name} in {results[name]['runtime_seconds']:.0f} s", flush=True)
    text = tables(results, train_s)
    text += f"\nTotal wall-clock: {time.perf_counter() - t_all:.0f} s (torch threads {args.threads}).\n"
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(json.dumps({"train_seconds": train_s, "reports": results}, indent=2, default=str))
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
