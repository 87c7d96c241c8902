"""``python -m reengage.certify --model PATH --env ID ...`` (or ``--run DIR``): certify a trained SB3 policy.

Writes ``report.json`` (threat model, radii, bounds, confidence, sample counts, seed, runtime, and under
``semantics`` what each number is: a bound at which confidence, or an estimate) and PNG plots (certified success
/ return against the total budget B, histogram of per-state radii) into ``--out``. The smoothing settings come
from the command line, else the model's sidecar (``<model>.smoothing.json``), else (``--run``) the run's
``observation_noise``; ``--save-sidecar`` stores the ones used together with the environment id and kwargs, so
a later run with the same seed reproduces the report and a run on another environment is refused (``--force``).

Every input error (unknown env id, malformed ``--env-kwargs``, a file that is not a model, ``--out`` that is a
file, an unsupported observation or action space, ``--top-k`` on continuous actions, a number out of range)
exits with code 2 and a one-line message before any work.
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

from reengage.algorithms import MODEL_CLASSES, algorithm_class, detect_algorithm
from reengage.noise_wrapper import wrap_with_noise
from reengage.observation_noise import NOISE_KINDS, SmoothingConfig, load_sidecar, save_sidecar, sidecar_path

from . import attacks, inputs
from .certificates import (
    certify_continuous_l2,
    certify_discrete_l2,
    certify_l0_deterministic,
    certify_l0_randomized,
    certify_relaxed,
)
from .episode import certify_episodes
from .plots import plot_episode_curves, plot_radius_histogram
from .population import attack_test_level, population_estimate, sample_states
from .ranges import ReturnRangeUnknown, return_range
from .smoothing import SmoothedPolicy


def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not (np.isfinite(v) and v >= 0) for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers >= 0, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer (>= 1), got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in the open interval (0, 1), got {text!r}") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in the open interval (0, 1) (a failure probability), got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not (value > 0 and np.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}") from None
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reengage.certify", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="path of the SB3 model zip (default with --run: DIR/model.zip)")
    p.add_argument(
        "--env", default=None, help="gymnasium id, e.g. reengage/ContinuousSeek5-v0 (default with --run: the run's)"
    )
    p.add_argument("--env-kwargs", default=None, help="JSON object passed to gym.make (default {} or the run's)")
    p.add_argument(
        "--run",
        default=None,
        help="a train.py run folder (--logdir): env, kwargs, observation noise, algorithm and model are read from it",
    )
    p.add_argument(
        "--force", action="store_true", help="certify on another environment than the one recorded with the model"
    )
    p.add_argument(
        "--algo", default=None, help=f"model class (default: sidecar or detected); one of {', '.join(MODEL_CLASSES)}"
    )
    p.add_argument("--noise", choices=NOISE_KINDS, default=None, help="smoothing kind (default: from the sidecar)")
    p.add_argument("--sigma", type=_positive_float, default=None)
    p.add_argument("--retain", type=_positive_int, default=None, help="features kept per sample (randomized ablation)")
    p.add_argument("--groups", type=_positive_int, default=None, help="groups (deterministic ablation)")
    p.add_argument(
        "--keys", nargs="+", default=None, help="observation keys to smooth (default observation achieved_goal)"
    )
    p.add_argument("--null-value", type=_finite_float, default=None, help="ablated features' value (default 0.5)")
    p.add_argument("--n0", type=_positive_int, default=100, help="selection samples per state")
    p.add_argument("--n", type=_positive_int, default=10_000, help="estimation samples per state")
    p.add_argument(
        "--alpha", type=_probability, default=0.001, help="failure probability of each per-state certificate"
    )
    p.add_argument(
        "--eta", type=_probability, default=0.05, help="failure probability of population and episode bounds"
    )
    p.add_argument("--states", type=_positive_int, default=50, help="states (one per independent episode) to certify")
    p.add_argument("--eps", type=_floats, default=None, help="comma-separated radii for the population estimates")
    p.add_argument(
        "--episodes", type=_positive_int, default=200, help="clean smoothed episodes for episode certificates"
    )
    p.add_argument("--budgets", type=_floats, default=None, help="comma-separated total budgets B")
    p.add_argument(
        "--return-range",
        type=_finite_float,
        nargs=2,
        default=None,
        metavar=("MIN", "MAX"),
        help="range of the episode return (default: from the env's declared per-step reward_range)",
    )
    p.add_argument("--success-key", default="is_success")
    p.add_argument(
        "--tolerance", type=_positive_float, default=None, help="continuous actions: tolerance in action units"
    )
    p.add_argument("--top-k", type=_positive_int, default=None, help="discrete l2: also certify the clean top-k set")
    p.add_argument("--attack-steps", type=_positive_int, default=20)
    p.add_argument(
        "--attack-n",
        type=_positive_int,
        default=2000,
        help="fresh draws per point in the test that confirms an attack (at x and at the attack point)",
    )
    p.add_argument("--max-hamming", type=_nonnegative_int, default=2, help="largest l0 radius searched exhaustively")
    p.add_argument("--batch-size", type=_positive_int, default=10_000)
    p.add_argument("--vecnormalize", default=None, help="VecNormalize statistics (.pkl): applied AFTER the noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="certify_out")
    p.add_argument("--save-sidecar", action="store_true", help="store the smoothing settings next to the model")
    p.add_argument("--progress", action="store_true")
    return p


def _config_from_args(
    args: argparse.Namespace, model_path: Path, run_noise: dict[str, Any] | None = None
) -> tuple[SmoothingConfig, dict[str, Any]]:
    """Smoothing settings: the flags, else the sidecar, else the run's training noise."""
    has_sidecar = sidecar_path(model_path).exists()
    extra = load_sidecar(model_path)[1] if has_sidecar else {}
    if args.noise is None:
        if has_sidecar:
            saved, source = load_sidecar(model_path), f"the sidecar {sidecar_path(model_path)}"
        elif run_noise is not None:
            saved, source = (SmoothingConfig.from_dict(run_noise), extra), "the run's observation_noise"
        else:
            raise ValueError(
                f"no --noise given and no sidecar at {sidecar_path(model_path)}; choose one of {NOISE_KINDS}"
            )
        _refuse_flags_that_differ(args, saved[0], source)
        return saved
    cfg = SmoothingConfig(
        kind=args.noise,
        sigma=args.sigma,
        retain=args.retain,
        groups=args.groups,
        keys=tuple(args.keys) if args.keys else ("observation", "achieved_goal"),
        null_value=0.5 if args.null_value is None else args.null_value,
    )
    return cfg, extra


def _refuse_flags_that_differ(args: argparse.Namespace, saved: SmoothingConfig, source: str) -> None:
    """A smoothing flag given beside saved settings must agree with them: never certify other settings
    than the ones the user asked for, and never ignore a flag without a word."""
    given = {
        "--sigma": (args.sigma, saved.sigma),
        "--retain": (args.retain, saved.retain),
        "--groups": (args.groups, saved.groups),
        "--null-value": (args.null_value, saved.null_value),
        "--keys": (tuple(args.keys) if args.keys else None, tuple(saved.keys)),
    }
    differing = [
        f"{flag} {value if not isinstance(value, tuple) else ' '.join(value)} (saved: "
        f"{kept if not isinstance(kept, tuple) else ' '.join(kept)})"
        for flag, (value, kept) in given.items()
        if value is not None and value != kept
    ]
    if differing:
        raise ValueError(
            f"{'; '.join(differing)} differ{'s' if len(differing) == 1 else ''} from the smoothing settings of "
            f"{source} ({saved.kind}); leave {'it' if len(differing) == 1 else 'them'} out to certify those "
            f"settings, or give --noise with every smoothing flag to certify other ones"
        )


def check_options(smoothed: SmoothedPolicy, args: argparse.Namespace) -> None:
    """Refuse, before any work, options that do not fit the model and the smoothing kind."""
    kind = smoothed.config.kind
    if args.top_k is not None:
        if not (kind == "gaussian" and smoothed.discrete):
            raise ValueError(
                f"--top-k certifies sets of discrete actions under Gaussian noise; this model has action space "
                f"{smoothed.adapter.action_space} and {kind!r} smoothing (drop --top-k)"
            )
        if args.top_k > smoothed.n_actions:
            raise ValueError(
                f"--top-k {args.top_k} exceeds the {smoothed.n_actions} actions; valid: 1..{smoothed.n_actions}"
            )
    if not smoothed.discrete:
        if kind != "gaussian":
            raise ValueError(f"continuous actions are certified under Gaussian noise only, got {kind!r} smoothing")
        space = smoothed.adapter.action_space
        width = float(np.min(space.high - space.low))
        if args.tolerance is not None and args.tolerance > width:
            raise ValueError(f"--tolerance {args.tolerance} exceeds the action range {width}; valid: (0, {width}]")
    if args.eps is not None and kind != "gaussian" and any(int(e) != e for e in args.eps):
        raise ValueError(f"--eps {args.eps}: l0 radii are whole numbers of features for {kind!r} smoothing")


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


def attack_state(
    smoothed: SmoothedPolicy, obs: Any, cert: Any, eps: float, args: argparse.Namespace, level: float
) -> bool | None:
    """True if an attack of size eps is CONFIRMED to change the smoothed decision (false alarm <= ``level``);
    None if no attack applies. Deterministic ablation decisions are exact (no test needed)."""
    obs = smoothed.as_dict(obs)
    flat = smoothed.flat_state(obs)
    if smoothed.config.kind == "gaussian":
        if eps <= 0:
            return False
        attack_rng = smoothed.stream("attack")
        if smoothed.discrete:
            ref = int(cert.details["selected"])
            delta = attacks.pgd_l2(smoothed, obs, eps, ref, steps=args.attack_steps, rng=attack_rng)
            return attacks.confirm_discrete_break(smoothed, obs, flat + delta, ref, args.attack_n, level)
        ref = np.asarray(cert.details["mean_action"])
        tol = float(np.min(cert.details["tolerance"]))
        delta = attacks.pgd_l2(smoothed, obs, eps, ref, steps=args.attack_steps, rng=attack_rng)
        return attacks.confirm_continuous_break(smoothed, obs, flat + delta, ref, tol, args.attack_n, level)
    if eps > args.max_hamming or int(eps) != eps:
        return None
    if not np.all((flat == 0) | (flat == 1)):
        return None
    found, candidate = attacks.hamming_search(smoothed, obs, int(eps), n=args.attack_n)
    if smoothed.config.kind == "deterministic_ablation" or not found:
        return found
    return attacks.confirm_discrete_break(smoothed, obs, candidate, int(cert.details["selected"]), args.attack_n, level)


SEMANTICS = {
    "per_state.radii": "per-state certified radius: a bound holding with probability >= 1 - alpha per state "
    "(exact, alpha = 0, for deterministic ablation); null = abstained",
    "population.certified_fraction": "estimate: fraction of the sampled states certified at eps",
    "population.hoeffding / clopper_pearson": "two-sided intervals on P(certified at eps), each at confidence 1 - eta",
    "population.robust_lower": "lower bound on the fraction of truly robust states at confidence 1 - eta "
    "(CP lower end minus the per-state alpha)",
    "population.attack_robust_upper": "upper bound on the fraction of truly robust states at confidence 1 - eta: "
    "only confirmed breaks count (see attack_bracket)",
    "population.attack_success_fraction": "estimate: fraction of states with a confirmed break",
    "episode.certified_success": "lower bounds on the adversarial success probability at each budget; success and "
    "return hold jointly at confidence 1 - eta",
    "episode.certified_return": "lower bounds on the adversarial expected return over the stated return_range",
    "episode.success_rate / mean_return": "estimates from the clean smoothed episodes",
}


def run(args: argparse.Namespace, training_run: inputs.TrainingRun | None = None) -> dict[str, Any]:
    """Certify, write ``report.json`` and the plots into ``--out``; returns the report.

    ``training_run`` is the run that trained the model, opened by :mod:`reengage.certify`: with ``--run DIR`` that
    folder (its environment, noise, model class and model are the defaults), else the run folder the ``--model``
    file sits in, if any (its environment is the recorded one when the model has no sidecar).
    """
    t_start = time.perf_counter()
    if args.run and training_run is None:
        raise ValueError(f"--run {args.run}: a training run folder is opened by python -m reengage.certify")
    from_run = training_run if args.run else None
    if from_run is None and (args.model is None or args.env is None):
        raise ValueError("give --model PATH and --env ID, or --run DIR (a train.py run folder)")

    # environment: ids, kwargs and spaces are checked before anything is loaded
    env_kwargs = inputs.parse_env_kwargs(args.env_kwargs) if args.env_kwargs is not None else None
    if from_run is not None:
        inputs.check_same_env(
            (from_run.env_id, from_run.env_kwargs),
            args.env or from_run.env_id,
            from_run.env_kwargs if env_kwargs is None else env_kwargs,
            args.force,
        )
        env_id = args.env or from_run.env_id
        env_kwargs = from_run.env_kwargs if env_kwargs is None else env_kwargs
    else:
        env_id, env_kwargs = args.env, env_kwargs or {}
    env = inputs.make_env(env_id, env_kwargs)
    model_path = inputs.check_model_file(Path(args.model) if args.model else from_run.model_file)
    config, extra = _config_from_args(args, model_path, from_run.observation_noise if from_run else None)
    if from_run is None:
        inputs.check_same_env(inputs.recorded_env(extra, training_run), env_id, env_kwargs, args.force)
    # created only once the settings are known to be usable: a refused command leaves nothing behind
    out = inputs.check_out_dir(Path(args.out))

    # the model: HER models need an env to load, and one trained under noise needs the noise-wrapped spaces
    if args.algo:
        algo_cls, algo = algorithm_class(args.algo), args.algo
    elif from_run is not None:
        algo_cls = from_run.agent_class()
        algo = algo_cls.__name__
    else:
        algo = extra.get("algorithm") or detect_algorithm(model_path)
        algo_cls = algorithm_class(algo)
    factories = []
    if from_run is not None:
        factories.append(lambda: from_run.make_env(noise_seed=0))
    factories += [
        lambda: inputs.make_env(env_id, env_kwargs),
        lambda: wrap_with_noise(inputs.make_env(env_id, env_kwargs), config, seed=0),
    ]
    model = inputs.load_model(algo_cls, model_path, factories)
    normalizer = None
    if args.vecnormalize:
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        try:
            vn = VecNormalize.load(args.vecnormalize, DummyVecEnv([lambda: gym.make(env_id, **env_kwargs)]))
        except Exception as error:  # noqa: BLE001  (a bad statistics file is bad input: exit 2)
            raise ValueError(
                f"--vecnormalize {args.vecnormalize}: cannot load VecNormalize statistics ({error})"
            ) from None
        vn.training = False

        def normalizer(batch: dict) -> dict:
            # noise lives in the raw space; the normaliser is part of the base policy
            return vn.normalize_obs(batch)

    smoothed = SmoothedPolicy(model, config, seed=args.seed, batch_size=args.batch_size, obs_normalizer=normalizer)
    inputs.check_model_fits_env(smoothed.adapter.observation_space, smoothed.adapter.action_space, env, env_id)
    check_options(smoothed, args)
    rr_error = None
    rr_source = None
    rr = None
    if config.kind == "gaussian":
        try:
            rr, rr_source = return_range(env, args.return_range)
        except ReturnRangeUnknown as error:
            rr_error = str(error)
            print(f"python -m reengage.certify: warning: return certificate refused: {error}", file=sys.stderr)
    if args.save_sidecar:
        save_sidecar(
            model_path,
            config,
            {**extra, "algorithm": algo, "seed": args.seed, "env_id": env_id, "env_kwargs": env_kwargs},
        )

    report: dict[str, Any] = {
        "model": str(model_path),
        "run": None if from_run is None else str(from_run.path),
        "env": env_id,
        "env_kwargs": env_kwargs,
        "algorithm": algo,
        "smoothing": config.to_dict(),
        "seed": args.seed,
        "threat_space": f"concatenation of keys {list(config.keys)} ({smoothed.d} features), raw observation space",
        "samples": {"n0": args.n0, "n": args.n, "batch_size": args.batch_size, "attack_n": args.attack_n},
        "alpha_per_state": args.alpha,
        "eta": args.eta,
        "semantics": SEMANTICS,
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

    # population estimates with the attack bracket (only confirmed breaks count)
    eps_list = args.eps
    if eps_list is None:
        eps_list = [0.1, 0.25, 0.5] if config.kind == "gaussian" else [1, 2]
    exact = config.kind == "deterministic_ablation"
    level = attack_test_level(args.eta, len(states))
    pops = []
    t0 = time.perf_counter()
    for eps in eps_list:
        certified = np.array([m.certifies(eps) for m in main])
        attacked_raw = [attack_state(smoothed, s, m, eps, args, level) for s, m in zip(states, main)]
        attacked = None if any(a is None for a in attacked_raw) else np.array(attacked_raw, dtype=bool)
        est = population_estimate(
            certified,
            eps,
            args.eta,
            per_state_alpha=main[0].alpha,
            episode_ids=episode_ids,
            attacked=attacked,
            attack_exact=exact,
        )
        pops.append(est.to_dict())
    report["population"] = pops
    report["population_seconds"] = time.perf_counter() - t0

    # episode certificates (policy smoothing) for Gaussian noise
    if config.kind == "gaussian":
        budgets = args.budgets or list(np.round(np.linspace(0.0, 2.0 * config.sigma * 2, 9), 4))
        t0 = time.perf_counter()
        ep = certify_episodes(
            smoothed,
            env,
            args.episodes,
            budgets,
            rr,
            alpha=args.eta,
            seed=args.seed + 1,
            success_key=args.success_key,
            progress=args.progress,
        )
        report["episode"] = ep.to_dict()
        report["episode"]["return_range_source"] = rr_source
        if rr_error is not None:
            report["episode"]["return_certificate_refused"] = rr_error
        report["episode"]["seconds"] = time.perf_counter() - t0
        plot_episode_curves(
            report["episode"],
            out / "episode_certificates.png",
            title=f"{env_id}: policy smoothing, sigma {config.sigma}",
        )
    else:
        report["episode"] = {"skipped": "policy smoothing certificates need Gaussian noise"}

    unit = "l2 radius" if config.kind == "gaussian" else "l0 radius (features)"
    plot_radius_histogram(radii, out / "radius_histogram.png", unit, title=f"{env_id}: {main[0].kind}")
    report["runtime_seconds"] = time.perf_counter() - t_start
    (out / "report.json").write_text(json.dumps(report, indent=2, default=jsonable))
    return report


def _median(radii: list[Any]) -> Any:
    vals = [(-1.0 if r is None else (float("inf") if r == "inf" else float(r))) for r in radii]
    med = float(np.median(vals))
    return None if med < 0 else ("inf" if np.isinf(med) else med)


def jsonable(o: Any) -> Any:
    """``json.dumps``'s ``default``: numpy arrays and scalars as Python values, anything else as text."""
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    return str(o)
