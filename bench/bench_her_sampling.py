#!/usr/bin/env python
"""HER sampling throughput: stable-baselines3's HerReplayBuffer against FastHerReplayBuffer.

    python bench/bench_her_sampling.py [--d 20] [--fills 10000 100000] [--batch-size 256]
                                       [--buffer-size 1000000] [--rounds 5] [--batches 200] [--json]

Both buffers are built as train.py builds its replay buffer (ContinuousSeek, the config's HER settings
and capacity, the Monitor-wrapped DummyVecEnv) and receive the same transitions, from random actions,
up to each fill level in turn. At each fill they are timed side by side in interleaved rounds (SB3,
fast, SB3, fast, ...), each round drawing ``--batches`` batches; printed are the median batches per
second of each and the ratio of medians. ``measure_her_sampling`` returns the same numbers as a dict
for other benchmarks (bench_training_speed.py) to print.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import numpy as np
from reengage.agents import FastHerReplayBuffer
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.vec_env import VecEnv

from reengage.experiment.build import make_training_env
from reengage.experiment.config import resolve_config

DIMENSIONS = (5, 10, 20)


def _store_random_steps(env: VecEnv, buffers: list[Any], steps: int, rng: np.random.Generator, obs: dict) -> dict:
    """Step ``env`` with uniform random actions and add every transition to all ``buffers``."""
    low, high = env.action_space.low, env.action_space.high
    for _ in range(steps):
        action = rng.uniform(low, high, size=(env.num_envs,) + env.action_space.shape).astype(np.float32)
        next_obs, reward, done, infos = env.step(action)
        stored_next = {key: value.copy() for key, value in next_obs.items()}
        for index in np.flatnonzero(done):  # the auto-reset replaced the final observation, as in SB3
            for key in stored_next:
                stored_next[key][index] = infos[index]["terminal_observation"][key]
        for buffer in buffers:
            buffer.add(obs, stored_next, action, reward, done, infos)
        obs = next_obs
    return obs


def _batches_per_second(buffer: Any, batch_size: int, batches: int) -> float:
    start = time.perf_counter()
    for _ in range(batches):
        buffer.sample(batch_size)
    return batches / (time.perf_counter() - start)


def measure_her_sampling(
    d: int = 20,
    fills: tuple[int, ...] = (10_000, 100_000),
    batch_size: int = 256,
    buffer_size: int = 1_000_000,
    rounds: int = 5,
    batches: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Median batches per second of SB3's and the fast HER buffer at each fill level, measured side by side.

    :return: ``{"d", "batch_size", "buffer_size", "rounds", "batches_per_round", "her",
        "construct_seconds": {"sb3", "fast"} (one build each), "fills": [{"fill",
        "sb3_batches_per_s", "fast_batches_per_s", "sb3_rounds", "fast_rounds", "speedup"}, ...]}``,
        where ``speedup`` is fast over SB3 (ratio of the medians).
    """
    if sorted(fills) != list(fills) or fills[0] < 1 or fills[-1] > buffer_size:
        raise ValueError(f"fills must be increasing, in [1, buffer_size={buffer_size}], got {list(fills)}")
    config = resolve_config(f"reengage/ContinuousSeek{d}-v0", "ddpg", assignments=[f"buffer_size={buffer_size}"])
    her_kwargs = dict(config["her"] or {"n_sampled_goal": 4, "goal_selection_strategy": "future"})
    env = make_training_env(config, seed)
    arguments = (buffer_size, env.observation_space, env.action_space, env)
    np.random.seed(seed)  # SB3's buffer samples from the global generator
    buffers: dict[str, Any] = {}
    construct_seconds: dict[str, float] = {}
    for name, build in (
        ("sb3", lambda: HerReplayBuffer(*arguments, device="cpu", **her_kwargs)),
        ("fast", lambda: FastHerReplayBuffer(*arguments, device="cpu", seed=seed, **her_kwargs)),
    ):
        start = time.perf_counter()  # SB3's constructor builds one info dict per slot
        buffers[name] = build()
        construct_seconds[name] = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    obs = env.reset()
    stored = 0
    results = []
    for fill in fills:
        obs = _store_random_steps(env, list(buffers.values()), fill - stored, rng, obs)
        stored = fill
        for buffer in buffers.values():  # warm-up: first-call lookups, caches
            buffer.sample(batch_size)
        timings: dict[str, list[float]] = {name: [] for name in buffers}
        for _ in range(rounds):
            for name, buffer in buffers.items():
                timings[name].append(_batches_per_second(buffer, batch_size, batches))
        sb3, fast = (statistics.median(timings[name]) for name in ("sb3", "fast"))
        results.append(
            {
                "fill": fill,
                "sb3_batches_per_s": sb3,
                "fast_batches_per_s": fast,
                "sb3_rounds": timings["sb3"],
                "fast_rounds": timings["fast"],
                "speedup": fast / sb3,
            }
        )
    env.close()
    return {
        "d": d,
        "batch_size": batch_size,
        "buffer_size": buffer_size,
        "rounds": rounds,
        "batches_per_round": batches,
        "her": her_kwargs,
        "construct_seconds": construct_seconds,
        "fills": results,
    }


def format_her_sampling(result: dict[str, Any]) -> str:
    """Human-readable lines for a ``measure_her_sampling`` result."""
    lines = [
        f"HER sampling, ContinuousSeek d={result['d']}, batch {result['batch_size']}, capacity "
        f"{result['buffer_size']:,}, {result['her']}, median of {result['rounds']} interleaved rounds "
        f"of {result['batches_per_round']} batches"
    ]
    built = result["construct_seconds"]
    lines.append(f"  building the buffer (once each): SB3 {built['sb3']:.2f} s, fast {built['fast']:.3f} s")
    for row in result["fills"]:
        lines.append(
            f"  fill {row['fill']:>9,}: SB3 {row['sb3_batches_per_s']:8.0f} batches/s, fast "
            f"{row['fast_batches_per_s']:8.0f} batches/s, ratio fast/SB3 {row['speedup']:6.2f}x"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=20, choices=DIMENSIONS)
    parser.add_argument("--fills", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--buffer-size", type=int, default=1_000_000, help="capacity (train.py's default: 10^6)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=200, help="batches per timed round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="also print the result as one JSON line")
    args = parser.parse_args()
    for name in ("batch_size", "buffer_size", "rounds", "batches"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if sorted(args.fills) != args.fills or args.fills[0] < 1 or args.fills[-1] > args.buffer_size:
        parser.error(f"--fills must be increasing and in [1, --buffer-size={args.buffer_size}], got {args.fills}")
    result = measure_her_sampling(
        args.d, tuple(args.fills), args.batch_size, args.buffer_size, args.rounds, args.batches, args.seed
    )
    print(format_her_sampling(result))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
