#!/usr/bin/env python
"""Train a goal-conditioned agent, with or without the ReenGAGE term, and log to TensorBoard.

    python train.py --env reengage/ContinuousSeek5-v0 --algo ddpg --alpha 0.2 --seed 0 \\
        --timesteps 4000 --logdir runs/demo

Settings come from the environment's YAML file in configs/; ``--set key=value`` overrides any of
them (``python train.py --list-keys`` lists the keys). ``tensorboard --logdir runs`` shows the curves.

Ctrl-C (or SIGTERM) saves a checkpoint and stops; ``python train.py --logdir DIR --resume`` continues
with the saved settings (``--timesteps N`` extends a finished run). Bad settings exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from reengage.algorithms import ALGOS
from reengage.experiment.config import resolve_config, scan_config_files
from reengage.experiment.stop_signals import ignore_stop_signals, raised_by_interrupt

DEFAULT_ENV, DEFAULT_ALGO, DEFAULT_SEED = "reengage/ContinuousSeek5-v0", "ddpg", 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # env, algo and seed default to None so that --resume can tell a given flag from a default
    parser.add_argument("--env", default=None, help=f"gymnasium id (see --list-envs; default {DEFAULT_ENV})")
    parser.add_argument("--algo", default=None, help=f"one of: {', '.join(sorted(ALGOS))} (default {DEFAULT_ALGO})")
    parser.add_argument("--alpha", type=float, default=None, help="ReenGAGE weight; 0 = baseline (default: config)")
    parser.add_argument("--seed", type=int, default=None, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--timesteps", type=int, default=None, help="environment steps (default: config)")
    parser.add_argument("--logdir", default=None, help="run folder (default: runs/<env>/<algo>_a<alpha>_s<seed>)")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key; dotted keys reach into mappings (her.n_sampled_goal=8)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: 256-wide networks gain little from more, and "
        "parallel runs oversubscribe the cores)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (0: none)")
    parser.add_argument(
        "--trainer",
        choices=("fast", "sb3"),
        default=None,
        help="training path: fast (default: lean update) or sb3 (stock stable-baselines3 train())",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --logdir from its checkpoint, with its saved settings",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="delete what a run wrote in --logdir (config, logs, checkpoints, model) and start over",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--list-envs", action="store_true", help="print the configured env ids and exit")
    parser.add_argument(
        "--list-keys",
        action="store_true",
        help="print the config keys (meaning, default, valid values, algorithms) and exit",
    )
    return parser.parse_args(argv)


def _error(message: str) -> int:
    print(f"train.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except Exception as error:
        if not raised_by_interrupt(error):
            raise
        _report_stop_at_once()
        return 130
    except KeyboardInterrupt:
        # a second Ctrl-C, or one during start-up, before the signal handlers are in place
        _report_stop_at_once()
        return 130


def _report_stop_at_once() -> None:
    ignore_stop_signals()
    print(
        "train.py: stopped at once; the run folder keeps its newest complete checkpoint, if it has one "
        "(continue with --resume, or start over with --restart)",
        file=sys.stderr,
    )


def _main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_envs:
        files, broken = scan_config_files()
        for config in files:
            for env_id in config.env_ids:
                print(f"{env_id:40s} {config.path.name}  algos: {', '.join(config.algos)}")
        for problem in broken:
            print(f"train.py: warning: {problem} (its environments are unavailable)", file=sys.stderr)
        return 0
    if args.list_keys:
        from reengage.experiment.config_keys import describe_keys

        print("\n".join(describe_keys()))
        return 0
    for option, value in (
        ("--env", args.env),
        ("--algo", args.algo),
        ("--logdir", args.logdir),
        ("--device", args.device),
    ):
        if value is not None and not value.strip():
            # an empty value would silently fall back to the default
            return _error(f"{option} is empty; give a value or leave {option} out for the default")
    cores = os.cpu_count() or 1
    if not 1 <= args.threads <= cores:
        return _error(f"--threads must be between 1 and the {cores} CPU cores here, got {args.threads}")
    if args.seed is not None and args.seed < 0:
        return _error(f"--seed must be >= 0, got {args.seed}")
    import torch

    from reengage.experiment.resume import config_for_resume, read_saved_config
    from reengage.experiment.run_folder import check_logdir_path
    from reengage.experiment.runner import RunInterrupted, train_run

    torch.set_num_threads(args.threads)
    assignments = list(args.assignments)
    if args.checkpoint_every is not None:
        assignments.append(f"checkpoint_every={args.checkpoint_every}")
    if args.trainer is not None:
        assignments.append(f"trainer={args.trainer}")
    logdir = args.logdir
    try:
        if not args.resume or logdir is None:
            config = resolve_config(
                args.env or DEFAULT_ENV, args.algo or DEFAULT_ALGO, args.alpha, args.timesteps, assignments
            )
            seed = DEFAULT_SEED if args.seed is None else args.seed
            logdir = logdir or (
                f"runs/{config['env_id'].replace('/', '_')}/{config['algo']}_a{config['reengage_alpha']:g}_s{seed}"
            )
        if args.resume:
            check_logdir_path(logdir)
            config, seed = config_for_resume(
                read_saved_config(logdir), args.env, args.algo, args.alpha, args.timesteps, assignments
            )
            if args.seed is not None and args.seed != seed:
                return _error(
                    f"--resume with --seed {args.seed} would not continue the run in {logdir} "
                    f"(saved seed {seed}); leave --seed out"
                )
        train_run(config, seed, logdir, args.device, args.resume, progress=not args.no_progress, restart=args.restart)
    except ValueError as error:
        return _error(str(error))
    except OSError as fault:
        # the file system refused a write (permissions, a read-only or full disk, a name too long)
        from reengage.experiment.runner import continue_advice
        from reengage.file_faults import describe_fault, fault_exit_code

        advice = f"; {continue_advice(logdir)}" if logdir else ""
        print(f"train.py: error: {describe_fault(fault)}{advice}", file=sys.stderr)
        return fault_exit_code(fault)
    except RunInterrupted as stop:
        ignore_stop_signals()
        print(f"train.py: {stop}", file=sys.stderr)
        return stop.exit_code
    print(f"tensorboard --logdir {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
