#!/usr/bin/env python
"""Training speed: stock SB3 DDPG + HER against the toolkit (fast path) at alpha 0 and with ReenGAGE.

    python bench/bench_training_speed.py [--d 20] [--batch-size 256] [--rounds 7] [--steps 200] [--json]

Candidates, all with the same settings (ContinuousSeek d, batch 256, 2x256 networks, HER 'future' k=4,
one torch thread, the same seed):

  (a) stock   : stable_baselines3.DDPG with stable_baselines3.HerReplayBuffer
  (b) twin    : the toolkit's DDPG at alpha 0, as train.py builds it (fast trainer by default)
  (c) reengage: the same with ReenGAGE alpha 0.2
  (d) sb3 path: ReenGAGE alpha 0.2 on the stock SB3 path (``--with-sb3-path``; for reference)
  (f), (g)    : (b) and (c) with autograd instead of the hand-written step (``--with-autograd``,
                ``manual_update=False``: the fast path before the hand-written step; before/after in one run)

Each is warmed up past ``learning_starts``; then they are timed in interleaved rounds (a, b, c, a, b,
c, ...) of ``--steps`` environment steps each, so that load from other processes hits all alike.
Printed: median milliseconds per step (process CPU time and wall time), the ratios of the medians
(of ``--clock``, CPU by default: on a shared machine it excludes the time the process waits for a
core), HER sampling throughput of the two buffers and the replay buffers' memory and the peak RSS.
With ``--json`` the last line is one JSON object with ``twin_over_stock`` ((a)/(b)),
``reengage_over_twin`` ((c)/(b)) and ``reengage_over_stock`` ((c)/(a)).

``--profile NAME`` profiles one candidate instead (``--profiler cprofile``: Python functions;
``--profiler torch``: torch operators by own CPU time, with the ``train()`` share marked), e.g.
``--profile "reengage autograd" --with-autograd --profiler torch``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3 import DDPG

from reengage.experiment.build import agent_class, make_training_env, sb3_arguments
from reengage.experiment.config import resolve_config

TARGETS = {"twin_over_stock": (">=", 1.35), "reengage_over_twin": ("<=", 1.3), "reengage_over_stock": ("<=", 1.0)}


def build(cls: type, config: dict[str, Any], seed: int, **extra: Any) -> Any:
    """``cls`` with exactly the settings train.py would give it (stock DDPG: without the ReenGAGE ones)."""
    env = make_training_env(config, seed)
    policy, kwargs = sb3_arguments(config, env, seed)
    return cls(policy, env, **kwargs, **extra)


def buffer_bytes(buffer: Any) -> int:
    """Bytes held by the numpy arrays of a replay buffer (observations, actions, rewards, ...)."""
    total = 0
    for value in vars(buffer).values():
        if isinstance(value, np.ndarray):
            total += value.nbytes
        elif isinstance(value, dict):
            total += sum(v.nbytes for v in value.values() if isinstance(v, np.ndarray))
    return total


def sampling_throughput(buffer: Any, batch_size: int, seconds: float = 1.0) -> float:
    """Transitions per second that ``buffer.sample(batch_size)`` delivers (process CPU time)."""
    calls, start = 0, time.process_time()
    while time.process_time() - start < seconds:
        buffer.sample(batch_size)
        calls += 1
    return calls * batch_size / (time.process_time() - start)


def profile(agent: Any, warm_up: int, steps: int, profiler_name: str = "cprofile") -> int:
    """Profile ``steps`` environment steps after ``warm_up``: cProfile (functions by cumulative and own time) or
    torch.profiler (operators by own CPU time, and the share of the step spent in ``train()``)."""
    import cProfile
    import pstats

    agent.learn(warm_up)
    if profiler_name == "torch":
        from torch.profiler import ProfilerActivity, record_function
        from torch.profiler import profile as torch_profile

        train = agent.train

        def recorded_train(*args: Any, **kwargs: Any) -> None:
            with record_function("train() [the update]"):
                train(*args, **kwargs)

        agent.train = recorded_train
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            with record_function("learn() [the whole step]"):
                agent.learn(steps, reset_num_timesteps=False)
        del agent.train
        print(
            f"{type(agent).__name__}: {steps} steps, torch.profiler (self CPU time by operator; profiler overhead included)"
        )
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
        return 0
    profiler = cProfile.Profile()
    profiler.enable()
    agent.learn(steps, reset_num_timesteps=False)
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"{type(agent).__name__}: {steps} steps profiled (cProfile inflates Python-heavy code)")
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(15)
    return 0


def check(name: str, value: float) -> str:
    relation, bound = TARGETS[name]
    met = value >= bound if relation == ">=" else value <= bound
    return f"(target {relation} {bound}: {'met' if met else 'MISSED'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d", type=int, default=20, choices=(5, 10, 20))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200, help="environment steps per timed block")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="clock of the printed ratios")
    parser.add_argument("--with-sb3-path", action="store_true", help="also time ReenGAGE on the stock SB3 path")
    parser.add_argument(
        "--with-autograd",
        action="store_true",
        help="also time (b) and (c) with the autograd step instead of the hand-written one",
    )
    parser.add_argument(
        "--her-fills",
        type=int,
        nargs="*",
        default=[10_000, 100_000],
        help="buffer fills for bench_her_sampling's throughput comparison (none: skip)",
    )
    parser.add_argument(
        "--profile",
        choices=("stock", "twin", "reengage", "sb3 path", "twin autograd", "reengage autograd"),
        default=None,
        help="instead of timing, cProfile --steps steps of one candidate and print the top functions",
    )
    parser.add_argument("--profiler", choices=("cprofile", "torch"), default="cprofile", help="profiler of --profile")
    parser.add_argument("--json", action="store_true", help="print the ratios as one JSON object on the last line")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.threads < 1:
        parser.error(f"--rounds, --steps and --threads must be >= 1, got {args.rounds}, {args.steps}, {args.threads}")
    torch.set_num_threads(args.threads)

    settings = [f"batch_size={args.batch_size}", "learning_starts=300", "buffer_size=100000", "net_arch=[256,256]"]
    baseline_config = resolve_config(f"reengage/ContinuousSeek{args.d}-v0", "ddpg", alpha=0.0, assignments=settings)
    reengage_config = resolve_config(
        f"reengage/ContinuousSeek{args.d}-v0",
        "ddpg",
        alpha=args.alpha,
        assignments=[*settings, f"learning_rate={baseline_config['learning_rate']}"],
    )
    toolkit = agent_class(baseline_config)
    agents = {
        "stock": build(DDPG, baseline_config, 0),
        "twin": build(toolkit, baseline_config, 0, reengage_alpha=0.0),
        "reengage": build(toolkit, reengage_config, 0, reengage_alpha=args.alpha),
    }
    if args.with_sb3_path:
        sb3_path = agent_class({**reengage_config, "trainer": "sb3"})
        agents["sb3 path"] = build(sb3_path, reengage_config, 0, reengage_alpha=args.alpha)
    if args.with_autograd:
        agents["twin autograd"] = build(toolkit, baseline_config, 0, reengage_alpha=0.0)
        agents["reengage autograd"] = build(toolkit, reengage_config, 0, reengage_alpha=args.alpha)
        for name in ("twin autograd", "reengage autograd"):
            agents[name].manual_update = False
    if args.profile is not None:
        if args.profile == "sb3 path" and "sb3 path" not in agents:
            agents["sb3 path"] = build(
                agent_class({**reengage_config, "trainer": "sb3"}), reengage_config, 0, reengage_alpha=args.alpha
            )
        return profile(agents[args.profile], baseline_config["learning_starts"] + 50, args.steps, args.profiler)
    for agent in agents.values():
        agent.learn(baseline_config["learning_starts"] + 50)  # past the random phase, buffers filled alike

    cpu: dict[str, list[float]] = {name: [] for name in agents}
    wall: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(args.rounds):
        for name, agent in agents.items():
            start_cpu, start_wall = time.process_time(), time.perf_counter()
            agent.learn(args.steps, reset_num_timesteps=False)
            cpu[name].append(1000 * (time.process_time() - start_cpu) / args.steps)
            wall[name].append(1000 * (time.perf_counter() - start_wall) / args.steps)
    medians = {
        clock: {n: statistics.median(v) for n, v in times.items()} for clock, times in (("cpu", cpu), ("wall", wall))
    }

    print(
        f"ContinuousSeek d={args.d}, batch {args.batch_size}, 2x256, {args.rounds} interleaved rounds of "
        f"{args.steps} steps, {args.threads} torch thread(s); toolkit class {toolkit.__name__}"
    )
    labels = {
        "stock": "(a) stock SB3 DDPG+HER",
        "twin": "(b) toolkit alpha=0",
        "reengage": f"(c) toolkit alpha={args.alpha:g}",
        "sb3 path": f"(d) SB3 path alpha={args.alpha:g}",
        "twin autograd": "(f) autograd alpha=0",
        "reengage autograd": f"(g) autograd alpha={args.alpha:g}",
    }
    for name in agents:
        print(
            f"  {labels[name]:28s} cpu {medians['cpu'][name]:7.2f} ms/step (range {min(cpu[name]):.2f}-"
            f"{max(cpu[name]):.2f})   wall {medians['wall'][name]:7.2f} ms/step"
        )
    chosen = medians[args.clock]
    ratios = {
        "twin_over_stock": chosen["stock"] / chosen["twin"],
        "reengage_over_twin": chosen["reengage"] / chosen["twin"],
        "reengage_over_stock": chosen["reengage"] / chosen["stock"],
    }
    print(f"ratios of medians ({args.clock} time):")
    for name, value in ratios.items():
        print(f"  {name:20s} {value:6.3f}  {check(name, value)}")
    wall_ratios = {
        "twin_over_stock": medians["wall"]["stock"] / medians["wall"]["twin"],
        "reengage_over_twin": medians["wall"]["reengage"] / medians["wall"]["twin"],
        "reengage_over_stock": medians["wall"]["reengage"] / medians["wall"]["stock"],
    }
    print("  (wall-clock ratios: " + ", ".join(f"{k} {v:.3f}" for k, v in wall_ratios.items()) + ")")
    if args.with_autograd:
        print(
            f"  hand-written step against autograd: alpha 0 {chosen['twin autograd'] / chosen['twin']:.3f}x, "
            f"alpha {args.alpha:g} {chosen['reengage autograd'] / chosen['reengage']:.3f}x; with autograd the "
            f"ratios were twin_over_stock {chosen['stock'] / chosen['twin autograd']:.3f}, reengage_over_twin "
            f"{chosen['reengage autograd'] / chosen['twin autograd']:.3f}, reengage_over_stock "
            f"{chosen['reengage autograd'] / chosen['stock']:.3f}"
        )
    if args.with_sb3_path:
        print(f"  SB3 path / fast path at alpha {args.alpha:g}: {chosen['sb3 path'] / chosen['reengage']:.3f}")

    stock_buffer, fast_buffer = agents["stock"].replay_buffer, agents["twin"].replay_buffer
    stock_rate = sampling_throughput(stock_buffer, args.batch_size)
    fast_rate = sampling_throughput(fast_buffer, args.batch_size)
    print(
        f"HER sampling in the timed agents, batch {args.batch_size}, {stock_buffer.size()} stored transitions: "
        f"{type(stock_buffer).__name__} {stock_rate:,.0f} transitions/s, {type(fast_buffer).__name__} "
        f"{fast_rate:,.0f} transitions/s ({fast_rate / stock_rate:.2f}x)"
    )
    her_speedups = {}
    if args.her_fills:
        try:  # the buffer's own benchmark (bench_her_sampling.py), at larger fills
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from bench_her_sampling import measure_her_sampling
        except ImportError:
            measure_her_sampling = None
        if measure_her_sampling is not None:
            result = measure_her_sampling(
                d=args.d,
                fills=tuple(args.her_fills),
                batch_size=args.batch_size,
                buffer_size=max(args.her_fills),
                rounds=3,
                batches=100,
            )
            for row in result["fills"]:
                her_speedups[row["fill"]] = row["speedup"]
                print(
                    f"  bench_her_sampling, fill {row['fill']:,}: SB3 {row['sb3_batches_per_s']:,.0f} batches/s, "
                    f"fast {row['fast_batches_per_s']:,.0f} batches/s ({row['speedup']:.1f}x)"
                )
    print(
        f"memory: replay buffers (capacity 100,000) {type(stock_buffer).__name__} {buffer_bytes(stock_buffer) / 2**20:.1f} MiB, "
        f"{type(fast_buffer).__name__} {buffer_bytes(fast_buffer) / 2**20:.1f} MiB; peak RSS of this process "
        f"(all agents) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB"
    )
    if args.json:
        print(
            json.dumps(
                {
                    **ratios,
                    "clock": args.clock,
                    "wall_ratios": wall_ratios,
                    "ms_per_step_cpu": medians["cpu"],
                    "ms_per_step_wall": medians["wall"],
                    "her_sampling_speedup": fast_rate / stock_rate,
                    "her_sampling_speedup_by_fill": her_speedups,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
