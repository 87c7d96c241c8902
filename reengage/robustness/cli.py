"""``python -m reengage.certify --model PATH --env ID ...``: certify a trained SB3 policy by smoothing.

Writes ``report.json`` (threat model, radii, bounds, confidence, sample counts, seed, runtime) and PNG plots
(certified success / return against the total budget B, histogram of per-state radii) into ``--out``.
The smoothing settings come from the model's sidecar (``<model>.smoothing.json``) unless given on the command
line; ``--save-sidecar`` stores the ones used, so a later run with the same seed reproduces the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from . import attacks
from .certificates import (
    certify_continuous_l2,
    certify_discrete_l2,
    certify_l0_deterministic,
    certify_l0_randomized,
    certify_relaxed,
)
from .episode import certify_episodes
from .noise import NOISE_KINDS, SmoothingConfig, load_sidecar, save_sidecar, sidecar_path
from .plots import plot_episode_curves, plot_radius_histogram
from .population import population_estimate, sample_states
from .smoothing import SB3_ALGORITHMS, SmoothedPolicy, algorithm_class, detect_algorithm


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reengage.certify", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="path of the SB3 model zip")
    p.add_argument("--env", required=True, help="gymnasium id, e.g. reengage/ContinuousSeek5-v0")
    p.add_argument("--env-kwargs", default="{}", help="JSON dict passed to gym.make")
    p.add_argument("--algo", default=None, help=f"model class (default: sidecar or detected); one of {SB3_ALGORITHMS}")
    p.add_argument("--noise", choices=NOISE_KINDS, default=None, help="smoothing kind (default: from the sidecar)")
    p.add_argument("--sigma", type=float, default=None)
    p.add_argument("--retain", type=int, default=None, help="features kept per sample (randomized ablation)")
    p.add_argument("--groups", type=int, default=None, help="groups (deterministic ablation)")
    p.add_argument("--keys", nargs="+", default=None, help="observation keys to smooth (default observation achieved_goal)")
    p.add_argument("--null-value", type=float, default=0.5)
    p.add_argument("--n0", type=int, default=100, help="selection samples per state")
    p.add_argument("--n", type=int, default=10_000, help="estimation samples per state")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability of each per-state certificate")
    p.add_argument("--eta", type=float, default=0.05, help="failure probability of population and episode bounds")
    p.add_argument("--states", type=int, default=50, help="states (one per independent episode) to certify")
    p.add_argument("--eps", type=_floats, default=None, help="comma-separated radii for the population estimates")
    p.add_argument("--episodes", type=int, default=200, help="clean smoothed episodes for episode certificates")
    p.add_argument("--budgets", type=_floats, default=None, help="comma-separated total budgets B")
    p.add_argument("--return-range", type=float, nargs=2, default=None, metavar=("MIN", "MAX"))
    p.add_argument("--success-key", default="is_success")
    p.add_argument("--tolerance", type=float, default=None, help="continuous actions: tolerance in action units")
    p.add_argument("--top-k", type=int, default=None, help="discrete l2: also certify the clean top-k set")
    p.add_argument("--attack-steps", type=int, default=20)
    p.add_argument("--max-hamming", type=int, default=2, help="largest l0 radius searched exhaustively")
    p.add_argument("--batch-size", type=int, default=10_000)
    p.add_argument("--vecnormalize", default=None, help="VecNormalize statistics (.pkl): applied AFTER the noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="certify_out")
    p.add_argument("--save-sidecar", action="store_true", help="store the smoothing settings next to the model")
    p.add_argument("--progress", action="store_true")
    return p


def _config_from_args(args: argparse.Namespace, model_path: Path) -> tuple[SmoothingConfig, dict[str, Any]]:
    if args.noise is None:
        if not sidecar_path(model_path).exists():
            raise ValueError(
                f"no --noise given and no sidecar at {sidecar_path(model_path)}; choose one of {NOISE_KINDS}"
            )
        return load_sidecar(model_path)
    cfg = SmoothingConfig(
        kind=args.noise,
        sigma=args.sigma,
        retain=args.retain,
        groups=args.groups,
        keys=tuple(args.keys) if args.keys else ("observation", "achieved_goal"),
        null_value=args.null_value,
    )
    return cfg, {}


def default_return_range(env: gym.Env) -> tuple[float, float] | None:
    """A priori return range of the reengage goal environments (None when unknown)."""
    base = env.unwrapped
    horizon = getattr(base, "horizon", None)
    if horizon is None:
        return None
    if getattr(base, "reward_type", "sparse") == "sparse":
        return (-float(horizon), 0.0)
    box, d = getattr(base, "box", None), getattr(base, "d", None)
    if box is not None and d is not None:  # dense ContinuousSeek: -||s - g||_2 >= -2 box sqrt(d)
        return (-float(horizon) * 2.0 * float(box) * float(np.sqrt(d)), 0.0)
    return None


def per_state(smoothed: SmoothedPolicy, obs: Any, args: argparse.Namespace) -> dict[str, Any]:
    kind = smoothed.config.kind
    out: dict[str, Any] = {}
    if kind == "gaussian" and smoothed.discrete:
        out["main"] = certify_discrete_l2(smoothed, obs, args.n0, args.n, args.alpha)
        if args.top_k:
            out["top_k"] = certify_relaxed(smoothed, obs, top_k=args.top_k, n0=args.n0, n=args.n, alpha=args.alpha)
    elif kind == "gaussian":
        space = smoothed.adapter.action_space
        tol = args.tolerance if args.tolerance is not None else 0.25 * float(np.min(space.high - space.low))
        out["main"] = certify_continuous_l2(smoothed, obs, args.n, args.alpha, tolerance=tol)
    elif kind == "ablation" and smoothed.discrete:
        out["main"] = certify_l0_randomized(smoothed, obs, args.n0, args.n, args.alpha)
    elif kind == "deterministic_ablation" and smoothed.discrete:
        out["main"] = certify_l0_deterministic(smoothed, obs)
    else:
        raise ValueError(f"no certificate for {kind!r} smoothing with action space {smoothed.adapter.action_space}")
    return out


def attack_state(smoothed: SmoothedPolicy, obs: Any, cert: Any, eps: float, args: argparse.Namespace) -> bool | None:
    """True if an attack of size eps changed the smoothed decision; None if no attack applies."""
    if smoothed.config.kind == "gaussian":
        if smoothed.discrete:
            ref = cert.details["selected"]
            delta = attacks.pgd_l2(smoothed, obs, eps, ref, steps=args.attack_steps, rng=smoothed.rng)
            return attacks.decision_changed(smoothed, obs, delta, ref, n=2000)
        ref = np.asarray(cert.details["mean_action"])
        tol = float(np.min(cert.details["tolerance"]))
        delta = attacks.pgd_l2(smoothed, obs, eps, ref, steps=args.attack_steps, rng=smoothed.rng)
        return attacks.decision_changed(smoothed, obs, delta, ref, n=2000, tolerance=tol)
    if eps > args.max_hamming or int(eps) != eps:
        return None
    flat = smoothed.flat_state(smoothed.as_dict(obs))
    if not np.all((flat == 0) | (flat == 1)):
        return None
    found, _ = attacks.hamming_search(smoothed, obs, int(eps), n=2000)
    return found


def run(args: argparse.Namespace) -> dict[str, Any]:
    import reengage.envs  # noqa: F401  (registers the reengage/ ids)

    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model)
    if model_path.suffix != ".zip":
        model_path = model_path.with_name(model_path.name + ".zip")
    if not model_path.exists():
        raise ValueError(f"model file {model_path} does not exist")
    env_kwargs = json.loads(args.env_kwargs)
    env = gym.make(args.env, **env_kwargs)
    config, extra = _config_from_args(args, model_path)
    algo = args.algo or extra.get("algorithm") or detect_algorithm(model_path)
    from stable_baselines3.common.vec_env import DummyVecEnv

    try:  # without an env: a model trained on a noise wrapper has float spaces where the raw env has bits
        model = algorithm_class(algo).load(model_path, device="cpu")
    except Exception:  # e.g. HerReplayBuffer needs an env to be rebuilt
        model = algorithm_class(algo).load(
            model_path, env=DummyVecEnv([lambda: gym.make(args.env, **env_kwargs)]), device="cpu"
        )
    normalizer = None
    if args.vecnormalize:
        from stable_baselines3.common.vec_env import VecNormalize

        vn = VecNormalize.load(args.vecnormalize, DummyVecEnv([lambda: gym.make(args.env, **env_kwargs)]))
        vn.training = False

        def normalizer(batch: dict) -> dict:
            # noise lives in the raw space; the normaliser is part of the base policy
            return vn.normalize_obs(batch)

    smoothed = SmoothedPolicy(model, config, seed=args.seed, batch_size=args.batch_size, obs_normalizer=normalizer)
    if args.save_sidecar:
        save_sidecar(model_path, config, {"algorithm": algo, "seed": args.seed})

    report: dict[str, Any] = {
        "model": str(model_path),
        "env": args.env,
        "env_kwargs": env_kwargs,
        "algorithm": algo,
        "smoothing": config.to_dict(),
        "seed": args.seed,
        "threat_space": f"concatenation of keys {list(config.keys)} ({smoothed.d} features), raw observation space",
        "samples": {"n0": args.n0, "n": args.n, "batch_size": args.batch_size},
        "alpha_per_state": args.alpha,
        "eta": args.eta,
    }

    # per-state certificates on states met by the smoothed policy, one per independent episode
    t0 = time.perf_counter()
    states, episode_ids = sample_states(smoothed, env, args.states, seed=args.seed, progress=args.progress)
    certs = [per_state(smoothed, s, args) for s in states]
    t_cert = time.perf_counter() - t0
    main = [c["main"] for c in certs]
    radii = [m.to_dict()["radius"] for m in main]
    report["per_state"] = {
        "kind": main[0].kind,
        "threat_model": main[0].threat_model,
        "alpha": main[0].alpha,
        "radii": radii,
        "abstained": int(sum(m.abstained for m in main)),
        "median_radius": _median(radii),
        "seconds_per_state": t_cert / len(states),
        "examples": [m.to_dict() for m in main[:3]],
    }
    if args.top_k:
        report["per_state"]["top_k_radii"] = [c["top_k"].to_dict()["radius"] for c in certs]

    # population estimates with the attack bracket
    eps_list = args.eps
    if eps_list is None:
        eps_list = [0.1, 0.25, 0.5] if config.kind == "gaussian" else [1, 2]
    pops = []
    t0 = time.perf_counter()
    for eps in eps_list:
        certified = np.array([m.certifies(eps) for m in main])
        attacked_raw = [attack_state(smoothed, s, m, eps, args) for s, m in zip(states, main)]
        attacked = None if any(a is None for a in attacked_raw) else np.array(attacked_raw, dtype=bool)
        est = population_estimate(certified, eps, args.eta, per_state_alpha=main[0].alpha, episode_ids=episode_ids, attacked=attacked)
        pops.append(est.to_dict())
    report["population"] = pops
    report["population_seconds"] = time.perf_counter() - t0

    # episode certificates (policy smoothing) for Gaussian noise
    if config.kind == "gaussian":
        budgets = args.budgets or list(np.round(np.linspace(0.0, 2.0 * config.sigma * 2, 9), 4))
        rr = tuple(args.return_range) if args.return_range else default_return_range(env)
        t0 = time.perf_counter()
        ep = certify_episodes(smoothed, env, args.episodes, budgets, rr, alpha=args.eta, seed=args.seed + 1,
                              success_key=args.success_key, progress=args.progress)
        report["episode"] = ep.to_dict()
        report["episode"]["seconds"] = time.perf_counter() - t0
        plot_episode_curves(report["episode"], out / "episode_certificates.png", title=f"{args.env}: policy smoothing, sigma {config.sigma}")
    else:
        report["episode"] = {"skipped": "policy smoothing certificates need Gaussian noise"}

    unit = "l2 radius" if config.kind == "gaussian" else "l0 radius (features)"
    plot_radius_histogram(radii, out / "radius_histogram.png", unit, title=f"{args.env}: {main[0].kind}")
    report["runtime_seconds"] = time.perf_counter() - t_start
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_default))
    return report


def _median(radii: list[Any]) -> Any:
    vals = [(-1.0 if r is None else (float("inf") if r == "inf" else float(r))) for r in radii]
    med = float(np.median(vals))
    return None if med < 0 else ("inf" if np.isinf(med) else med)


def _default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    return str(o)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = run(args)
    except ValueError as error:  # bad or unsound settings: say why, no traceback
        print(f"python -m reengage.certify: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({k: report[k] for k in ("per_state",) if k in report}, default=_default)[:2000])
    print(f"report written to {Path(args.out) / 'report.json'} in {report['runtime_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
