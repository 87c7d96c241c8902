#!/usr/bin/env python
"""The fast and the SB3 training paths side by side on a robotics task, with configs/robotics.yaml's recipe.

    python bench/bench_robotics_trainers.py [--env HandReach-v3] [--alpha 1e-3] [--rounds 2] [--train-steps 1000]
                                            [--update-steps 40] [--update-batch 256] [--threads 1]

Four agents, built as ``train.py`` builds them (baselines DDPG + HER recipe, observation normaliser, 2 forked
environments, 40 gradient steps per 100 transitions): DDPG + HER (alpha 0) and ReenGAGE (``--alpha``), each on the
fast trainer (hand-written step) and on the SB3 trainer (stock ``train()`` with the mixins' hooks). Two timings, each
in interleaved rounds (every agent once per round, so machine noise hits all four alike); printed are medians and
the fast/SB3 ratio of medians:

* ``training``: environment steps per second of ``learn()`` past warm-up: rollouts, the normaliser's updates,
  HER sampling and the gradient steps, i.e. what a run's wall time is made of;
* ``update``: gradient steps per second of ``train(update_steps, update_batch)`` alone, on the filled buffer: the
  part of the cost the trainer choice changes (``--update-batch 4864`` times the full-scale file's batch); per
  second of wall time and per second of this process's CPU time (one thread: the CPU rate is what an idle core
  would give, and moves far less than the wall rate when other jobs share the cores).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from reengage.experiment.build import agent_class, build_agent, make_training_env
from reengage.experiment.config import resolve_config

TRAINERS = ("sb3", "fast")


def time_training(agent: Any, steps: int) -> float:
    """Environment steps per second of ``learn`` (training included)."""
    start = time.perf_counter()
    agent.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def time_updates(agent: Any, gradient_steps: int, batch_size: int) -> tuple[float, float]:
    """Gradient steps per second of ``train`` alone: per wall-clock second and per CPU second of this process."""
    start, cpu_start = time.perf_counter(), time.process_time()
    agent.train(gradient_steps, batch_size)
    return gradient_steps / (time.perf_counter() - start), gradient_steps / (time.process_time() - cpu_start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HandReach-v3")
    parser.add_argument("--alpha", type=float, default=1e-3, help="ReenGAGE's alpha (the HandReach comparisons')")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--train-steps",
        type=int,
        default=1000,
        help="environment steps per timed training block (0: time the updates only)",
    )
    parser.add_argument("--update-steps", type=int, default=40, help="gradient steps per timed update block")
    parser.add_argument("--update-batch", type=int, default=256, help="batch size of the timed update blocks")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    variants = {"DDPG+HER": 0.0, f"ReenGAGE alpha {args.alpha:g}": args.alpha}
    agents: dict[tuple[str, str], Any] = {}
    for name, alpha in variants.items():
        for trainer in TRAINERS:
            config = resolve_config(args.env, "ddpg", alpha, None, [f"trainer={trainer}", "buffer_size=200000"])
            agent = build_agent(config, make_training_env(config, seed=0), seed=0)
            assert type(agent) is agent_class(config)
            if trainer == "fast":
                assert agent._manual_plan() is not None, "the fast agent should run the hand-written step"
            agent.learn(config["learning_starts"] + 100)  # past warm-up: every timed block trains
            agents[(name, trainer)] = agent
    training: dict[tuple[str, str], list[float]] = {key: [] for key in agents}
    updates: dict[tuple[str, str], list[float]] = {key: [] for key in agents}
    updates_cpu: dict[tuple[str, str], list[float]] = {key: [] for key in agents}
    for _ in range(args.rounds):
        for key, agent in agents.items():
            if args.train_steps > 0:
                training[key].append(time_training(agent, args.train_steps))
        for key, agent in agents.items():
            wall, cpu = time_updates(agent, args.update_steps, args.update_batch)
            updates[key].append(wall)
            updates_cpu[key].append(cpu)
    for agent in agents.values():
        agent.env.close()

    print(
        f"{args.env}, DDPG with configs/robotics.yaml's recipe: medians of {args.rounds} interleaved rounds, "
        f"{args.threads} torch thread(s)"
    )
    tables = (
        ("training, environment steps/s", training, f"{args.train_steps} steps a block"),
        (
            f"update only, gradient steps/s (batch {args.update_batch})",
            updates,
            f"{args.update_steps} gradient steps a block",
        ),
        (
            f"update only, gradient steps per CPU second (batch {args.update_batch})",
            updates_cpu,
            f"{args.update_steps} gradient steps a block",
        ),
    )
    for title, rates, unit in tables:
        if not all(rates.values()):
            continue
        print(f"\n{title} ({unit})")
        print(f"  {'variant':24s} {'sb3':>9s} {'fast':>9s} {'fast/sb3':>9s}   rounds sb3 | fast")
        for name in variants:
            sb3, fast = (statistics.median(rates[(name, trainer)]) for trainer in TRAINERS)
            rounds = " | ".join(str([round(r, 1) for r in rates[(name, trainer)]]) for trainer in TRAINERS)
            print(f"  {name:24s} {sb3:9.1f} {fast:9.1f} {fast / sb3:8.2f}x   {rounds}")


if __name__ == "__main__":
    main()
