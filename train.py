#!/usr/bin/env python
"""Train a goal-conditioned agent, with or without the ReenGAGE term, and log to TensorBoard.

    python train.py --env reengage/ContinuousSeek5-v0 --algo ddpg --alpha 0.2 --seed 0 \\
        --timesteps 4000 --logdir runs/demo

Settings come from the environment's YAML file in configs/; ``--set key=value`` overrides any of
them (``python train.py --list-keys`` lists the keys). ``tensorboard --logdir runs`` shows the curves.
"""

from __future__ import annotations

import argparse
import sys

from reengage.experiment.config import SCHEMA, all_config_files, resolve_config
from reengage.experiment.registry import ALGOS
from reengage.experiment.runner import train_run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="reengage/ContinuousSeek5-v0", help="gymnasium id (see --list-envs)")
    parser.add_argument("--algo", default="ddpg", help=f"one of: {', '.join(sorted(ALGOS))}")
    parser.add_argument("--alpha", type=float, default=None, help="ReenGAGE weight; 0 = baseline (default: config)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timesteps", type=int, default=None, help="environment steps (default: config)")
    parser.add_argument("--logdir", default=None, help="run folder (default: runs/<env>/<algo>_a<alpha>_s<seed>)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key; dotted keys reach into mappings (her.n_sampled_goal=8)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: 256-wide networks gain little from more, and "
                             "parallel runs oversubscribe the cores)")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="steps between checkpoints (0: none)")
    parser.add_argument("--trainer", choices=("fast", "sb3"), default=None,
                        help="training path: fast (default: lean update) or sb3 (stock stable-baselines3 train())")
    parser.add_argument("--resume", action="store_true", help="continue the run in --logdir from its checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--list-envs", action="store_true", help="print the configured env ids and exit")
    parser.add_argument("--list-keys", action="store_true", help="print the config keys and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list_envs:
        for config in all_config_files():
            for env_id in config.env_ids:
                print(f"{env_id:40s} {config.path.name}  algos: {', '.join(config.algos)}")
        return 0
    if args.list_keys:
        for key, (_, default, meaning) in SCHEMA.items():
            print(f"{key:22s} {meaning} (default {default!r})")
        return 0
    if args.threads < 1:
        print(f"train.py: error: --threads must be >= 1, got {args.threads}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(args.threads)
    assignments = list(args.assignments)
    if args.checkpoint_every is not None:
        assignments.append(f"checkpoint_every={args.checkpoint_every}")
    if args.trainer is not None:
        assignments.append(f"trainer={args.trainer}")
    try:
        config = resolve_config(args.env, args.algo, args.alpha, args.timesteps, assignments)
    except ValueError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    logdir = args.logdir or (
        f"runs/{args.env.replace('/', '_')}/{args.algo}_a{config['reengage_alpha']:g}_s{args.seed}"
    )
    try:
        final = train_run(config, args.seed, logdir, args.device, args.resume, progress=not args.no_progress)
    except ValueError as error:
        print(f"train.py: error: {error}", file=sys.stderr)
        return 2
    print(f"model: {final}\ntensorboard --logdir {logdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
