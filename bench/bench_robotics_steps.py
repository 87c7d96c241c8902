#!/usr/bin/env python
"""Environment steps per second on the robotics tasks with one and two environments (n_envs).

    python bench/bench_robotics_steps.py [--env HandReach-v3] [--rounds 5] [--env-steps 1000] [--train-steps 500]

Two measurements, each timed in interleaved rounds (1 env, 2 envs, 1 env, ...) so that machine noise
hits both alike; printed are medians and the ratio of medians:

* ``env``: the training VecEnv alone under random actions (``DummyVecEnv`` for 1, forked
  ``SubprocVecEnv`` for 2): what MuJoCo and the vectorisation give;
* ``train``: DDPG + HER with configs/robotics.yaml's recipe and normaliser (alpha 0), past warm-up,
  at the recipe's ratio of 40 gradient steps per 100 transitions (1 env: ``train_freq`` 100;
  2 envs: ``train_freq`` 50 per env), so the two do the same learning work per environment step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from reengage.experiment.build import build_agent, make_training_env
from reengage.experiment.config import resolve_config


def time_env(venv, steps: int, rng: np.random.Generator) -> float:
    """Environment steps (summed over the environments) per second under uniform random actions."""
    low, high = venv.action_space.low, venv.action_space.high
    start = time.perf_counter()
    for _ in range(steps // venv.num_envs):
        venv.step(rng.uniform(low, high, size=(venv.num_envs, *venv.action_space.shape)).astype(np.float32))
    return (steps // venv.num_envs) * venv.num_envs / (time.perf_counter() - start)


def time_training(agent, steps: int) -> float:
    start = time.perf_counter()
    agent.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="HandReach-v3")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--env-steps", type=int, default=1000, help="environment steps per timed env block")
    parser.add_argument("--train-steps", type=int, default=500, help="environment steps per timed training block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    configs = {
        n: resolve_config(args.env, "ddpg", 0.0, None, [f"n_envs={n}", f"train_freq={100 // n}", "buffer_size=200000"])
        for n in (1, 2)
    }
    venvs = {n: make_training_env(configs[n], seed=0) for n in (1, 2)}
    for venv in venvs.values():
        venv.reset()
    agents = {n: build_agent(configs[n], make_training_env(configs[n], seed=0), seed=0) for n in (1, 2)}
    for agent in agents.values():
        agent.learn(200)  # past learning_starts (100): every timed block trains
    rng = np.random.default_rng(0)
    env_rates: dict[int, list[float]] = {1: [], 2: []}
    train_rates: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for n in (1, 2):
            env_rates[n].append(time_env(venvs[n], args.env_steps, rng))
        for n in (1, 2):
            train_rates[n].append(time_training(agents[n], args.train_steps))
    for venv in venvs.values():
        venv.close()
    print(f"{args.env}: environment steps per second, medians of {args.rounds} interleaved rounds")
    for label, rates in (("env only (random actions)", env_rates), ("DDPG+HER training (recipe)", train_rates)):
        one, two = statistics.median(rates[1]), statistics.median(rates[2])
        print(f"  {label:28s} 1 env: {one:8.1f}   2 envs: {two:8.1f}   ratio 2/1: {two / one:.2f}x")
        print(f"  {'':28s} rounds 1 env: {[round(r, 1) for r in rates[1]]}  2 envs: {[round(r, 1) for r in rates[2]]}")


if __name__ == "__main__":
    main()
