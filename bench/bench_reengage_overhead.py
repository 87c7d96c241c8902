#!/usr/bin/env python
"""Wall-clock per environment step of ReenGAGE against its alpha-0 twin and stock SB3 DDPG + HER.

    python bench/bench_reengage_overhead.py [--d 20] [--batch-size 256] [--rounds 5] [--steps 200]

The three agents are built with the same settings and seed, warmed up past ``learning_starts``, and
then timed in interleaved rounds (A, B, C, A, B, C, ...) so that machine noise hits all of them
alike. Printed: the median milliseconds per environment step of each and the ratios of medians. The
paper's overhead was +41% on ContinuousSeek (Table G.5); the target here is at most 1.25x alpha 0.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from stable_baselines3 import DDPG

from reengage.agents import ReenGAGEDDPG
from reengage.experiment.build import make_training_env, sb3_arguments
from reengage.experiment.config import resolve_config


def build(cls, config, seed, **extra):
    """``cls`` with exactly the settings train.py would give it (stock DDPG: without the ReenGAGE ones)."""
    env = make_training_env(config, seed)
    policy, kwargs = sb3_arguments(config, env, seed)
    return cls(policy, env, **kwargs, **extra)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=20, choices=(5, 10, 20))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200, help="environment steps per timed block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = resolve_config(f"reengage/ContinuousSeek{args.d}-v0", "ddpg", alpha=args.alpha,
                            assignments=[f"batch_size={args.batch_size}", "learning_starts=300", "buffer_size=100000"])
    agents = {
        f"ReenGAGE alpha={args.alpha:g}": build(ReenGAGEDDPG, config, 0, reengage_alpha=args.alpha),
        "ReenGAGE alpha=0": build(ReenGAGEDDPG, config, 0, reengage_alpha=0.0),
        "stock DDPG+HER": build(DDPG, config, 0),
    }
    for agent in agents.values():
        agent.learn(config["learning_starts"] + 50)  # past the random phase, buffers filled alike
    timings: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(args.rounds):
        for name, agent in agents.items():
            start = time.perf_counter()
            agent.learn(args.steps, reset_num_timesteps=False)
            timings[name].append(1000 * (time.perf_counter() - start) / args.steps)

    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(f"ContinuousSeek d={args.d}, batch {args.batch_size}, {args.rounds} interleaved rounds of {args.steps} steps, "
          f"{args.threads} torch thread(s)")
    for name, value in medians.items():
        spread = f"{min(timings[name]):.2f}-{max(timings[name]):.2f}"
        print(f"  {name:22s} {value:7.2f} ms/step (range {spread})")
    reengage, twin, stock = medians.values()
    print(f"ratio ReenGAGE / alpha-0 twin : {reengage / twin:.3f}  (target <= 1.25; paper +41% = 1.41)")
    print(f"ratio ReenGAGE / stock DDPG   : {reengage / stock:.3f}")
    print(f"ratio alpha-0 twin / stock    : {twin / stock:.3f}  (the hooks' cost when disabled)")


if __name__ == "__main__":
    main()
