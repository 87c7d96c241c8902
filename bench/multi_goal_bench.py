"""Multi-ReenGAGE cost on the machine it runs on: training steps per second, the arithmetic floor, replay memory.

    python bench/multi_goal_bench.py                                             # speed and memory
    python bench/multi_goal_bench.py --part speed --rounds 3 --steps 3          # before/after, 1 and 2 threads
    python bench/multi_goal_bench.py --part speed --variants reference fused --threads 1 --json
    python bench/multi_goal_bench.py --part profile                              # torch.profiler tables
    python bench/multi_goal_bench.py --part precision --rounds 5 --steps 20      # bf16 encoder: loss error
    python bench/multi_goal_bench.py --part memory                               # replay at 10^6 transitions
    python bench/multi_goal_bench.py --part alpha-cost --threads 1 --clock cpu   # DDPG vs Multi-ReenGAGE, both settings

Speed: environment steps per second while training (train_freq 1, one gradient step per step, alpha 10)
on DriveSeek with Table G.4's networks (encoder [400, 400] -> 20 on goal ++ state, heads [400], batch 256),
after 300 random steps. The variants are the same agent class with different training paths:

* ``reference`` -- ``gate_update="reference"``: stock SB3 ``train`` with the Multi-ReenGAGE hook (before);
* ``fused`` -- the default fused step (after), float32, SB3's order of actor and critic updates;
* ``fused-shared`` -- fused, the actor reusing the critic's pre-step encoding (one encoder pass fewer);
* ``fused-bf16`` -- fused with the set encoder under bfloat16 autocast.

Every (variant, thread count) pair is timed once per round, rounds interleaved, so that load from
other processes falls on all of them alike; the table gives medians and the ratio to ``reference``.

Floor: the FLOPs of the encoder passes a step cannot avoid (target forward, critic forward and
backward, the actor's forward), counted on the sampled batches' active pairs, divided by the speed of
the encoder's own largest matrix product measured in the same process.

Memory: a fresh process fills a GoalSetReplayBuffer with 10^6 DriveSeek transitions (25,000 episodes
of 40 steps, each with its own goal set) through ``add()`` and reports its peak resident memory, next
to the size a stable-baselines3 DictReplayBuffer would need for the same data (its arrays' nbytes;
numpy allocates them lazily, so building it costs nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def _rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def _current_rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return float(line.split()[1]) / 1024.0
    return float("nan")


def memory_child(transitions: int) -> dict:
    """Runs in a fresh interpreter (``--child-memory``): fill the buffer, report peak RSS."""
    import gymnasium as gym
    import reengage.envs  # noqa: F401
    from reengage.agents import GoalSetReplayBuffer
    from reengage.envs.drive_seek import sample_drive_seek_goals
    from reengage.envs.goal_set import pad_goal_set
    from stable_baselines3.common.buffers import DictReplayBuffer

    env = gym.make("reengage/DriveSeek-v0")
    space, action_space = env.observation_space, env.action_space
    baseline_mb = _current_rss_mb()
    buffer = GoalSetReplayBuffer(transitions, space, action_space, device="cpu", initial_goal_sets=1024)
    rng = np.random.default_rng(0)
    horizon = 40
    start = time.perf_counter()
    for _episode in range(transitions // horizon):
        goals, gates = pad_goal_set(sample_drive_seek_goals(rng), 200)
        goal_set = {"goals": goals[None], "gates": gates[None]}
        states = rng.uniform(-10, 10, size=(horizon + 1, 1, 6)).astype(np.float32)
        for t in range(horizon):
            items = np.zeros(200, dtype=np.float32)
            if t % 7 == 0:
                items[0] = 1.0
            buffer.add(
                {"observation": states[t], **goal_set},
                {"observation": states[t + 1], **goal_set},
                rng.uniform(-0.5, 0.5, size=(1, 1)).astype(np.float32),
                np.array([items.sum()]),
                np.array([t == horizon - 1]),
                [{"item_rewards": items, "TimeLimit.truncated": t == horizon - 1}],
            )
    fill_seconds = time.perf_counter() - start
    sample_start = time.perf_counter()
    for _ in range(20):
        buffer.sample(256)
    sample_ms = (time.perf_counter() - sample_start) / 20 * 1000
    dict_buffer = DictReplayBuffer(transitions, space, action_space, device="cpu")
    dict_bytes = (
        sum(a.nbytes for a in dict_buffer.observations.values())
        + sum(a.nbytes for a in dict_buffer.next_observations.values())
        + dict_buffer.actions.nbytes
        + dict_buffer.rewards.nbytes
        + dict_buffer.dones.nbytes
    )
    return {
        "transitions": transitions,
        "goal_set_rows_in_use": buffer.goal_set_rows_in_use,
        "buffer_nbytes_mb": buffer.nbytes() / 2**20,
        "peak_rss_mb": _rss_peak_mb(),
        "rss_before_buffer_mb": baseline_mb,
        "peak_rss_increase_mb": _rss_peak_mb() - baseline_mb,
        "dict_replay_buffer_nbytes_mb_without_item_rewards": dict_bytes / 2**20,
        "fill_seconds": fill_seconds,
        "sample_256_ms": sample_ms,
    }


def memory(transitions: int) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child-memory", str(transitions)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


TABLE_G4 = {"encoder_arch": [400, 400], "head_arch": [400], "batch_size": 256, "embed_dim": 20}
VARIANTS = {
    "reference": {"gate_update": "reference"},
    "fused": {"gate_update": "fused"},
    "fused-shared": {"gate_update": "fused", "actor_encoding": "shared"},
    "fused-bf16": {"gate_update": "fused", "encoder_precision": "bfloat16"},
}


def make_agent(env_id: str, variant: str, alpha: float, arch: dict, seed: int = 0):
    """A Multi-ReenGAGE DDPG agent past 300 random steps and one training step (the warm-up)."""
    import gymnasium as gym
    import reengage.envs  # noqa: F401
    from reengage.agents import MultiReenGAGEDDPG

    agent = MultiReenGAGEDDPG(
        "DeepSetsPolicy",
        gym.make(env_id),
        reengage_alpha=alpha,
        learning_starts=300,
        batch_size=arch["batch_size"],
        buffer_size=100_000,
        seed=seed,
        policy_kwargs={
            "encoder_arch": arch["encoder_arch"],
            "net_arch": arch["head_arch"],
            "embed_dim": arch["embed_dim"],
        },
        **VARIANTS[variant],
    )
    agent.learn(301)
    return agent


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_steps(agent, steps: int, clock: str = "wall") -> float:
    """Seconds for ``steps`` environment steps, each followed by one gradient step.

    ``clock="cpu"``: this process's CPU time (on a shared machine it leaves out the time spent waiting for a
    core; with one torch thread it is the time one core worked on the step).
    """
    now = CLOCKS[clock]
    start = now()
    agent.learn(steps, reset_num_timesteps=False)
    return now() - start


def encoder_flops(arch: dict, state_dim: int, goal_dim: int, pairs: float, batch: int) -> dict[str, float]:
    """FLOPs of one forward and one backward of phi over ``pairs`` (sample, goal) pairs.

    Forward: the first layer split (goal part per pair, state part per sample), then the dense layers.
    Backward: weight gradients of every layer and input gradients of all but the first (the pairs' goals
    and states need none): about twice the forward.
    """
    sizes = [*arch["encoder_arch"], arch["embed_dim"]]
    first = 2 * (pairs * goal_dim + batch * state_dim) * sizes[0]
    dense = sum(2 * pairs * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    backward = 2 * pairs * (goal_dim + state_dim) * sizes[0] + 2 * dense
    return {"forward": first + dense, "backward": backward}


def gemm_gflops(rows: int, width: int, repeats: int = 5, clock: str = "wall") -> float:
    """Measured speed of the encoder's dominant product, (rows x width) @ (width x width), float32."""
    import torch

    now = CLOCKS[clock]
    left, right = torch.randn(rows, width), torch.randn(width, width)
    out = torch.empty(rows, width)
    torch.mm(left, right, out=out)
    times = []
    for _ in range(repeats):
        start = now()
        torch.mm(left, right, out=out)
        times.append(now() - start)
    return 2 * rows * width * width / float(np.median(times)) / 1e9


def mean_active_pairs(agent, batch_size: int, samples: int = 20) -> float:
    batches = (agent.replay_buffer.sample(batch_size) for _ in range(samples))
    counts = [float(batch.observations["gates"].count_nonzero()) for batch in batches]
    return float(np.mean(counts))


def speed(args: argparse.Namespace) -> dict:
    import torch

    arch = TABLE_G4
    agents = {variant: make_agent(args.env, variant, args.alpha, arch) for variant in args.variants}
    any_agent = next(iter(agents.values()))
    space = any_agent.observation_space
    pairs = mean_active_pairs(any_agent, arch["batch_size"])
    seconds: dict[tuple[str, int], list[float]] = {(v, t): [] for v in args.variants for t in args.threads}
    gflops: dict[int, list[float]] = {t: [] for t in args.threads}
    for round_index in range(args.rounds):
        for threads in args.threads:
            torch.set_num_threads(threads)
            gflops[threads].append(gemm_gflops(int(pairs), arch["encoder_arch"][-1], clock=args.clock))
            for variant in args.variants:
                seconds[(variant, threads)].append(time_steps(agents[variant], args.steps, args.clock) / args.steps)
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    flops = encoder_flops(arch, space["observation"].shape[0], space["goals"].shape[1], pairs, arch["batch_size"])
    floor_flops = 3 * flops["forward"] + flops["backward"]  # target fwd, critic fwd + bwd, actor fwd
    # the shared actor encoding drops the actor's forward: a smaller floor for that (different) algorithm
    variant_floor = {v: floor_flops - (flops["forward"] if v == "fused-shared" else 0.0) for v in args.variants}
    print(
        f"DriveSeek, Table G.4 networks, batch {arch['batch_size']}, alpha {args.alpha:g}; "
        f"{args.rounds} interleaved rounds of {args.steps} steps; {os.cpu_count()} CPU cores; {args.clock} clock; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"active (sample, goal) pairs per batch: {pairs:.0f} of {arch['batch_size'] * space['gates'].shape[0]}")
    print(
        f"encoder FLOPs per pass over them: forward {flops['forward'] / 1e9:.2f} G, backward "
        f"{flops['backward'] / 1e9:.2f} G; unavoidable per step (3 forwards + 1 backward): {floor_flops / 1e9:.1f} G"
    )
    print()
    print("| variant | threads | s / step (median, range) | steps / s | speed-up over reference | own floor / time |")
    print("|---|---|---|---|---|---|")
    result: dict = {"pairs_per_batch": pairs, "floor_gflop": floor_flops / 1e9, "clock": args.clock, "variants": {}}
    for threads in args.threads:
        rate = float(np.median(gflops[threads]))
        floor_seconds = floor_flops / (rate * 1e9)
        result[f"gemm_gflops_{threads}t"] = rate
        result[f"floor_s_per_step_{threads}t"] = floor_seconds
        for variant in args.variants:
            floor_seconds = variant_floor[variant] / (rate * 1e9)
            times = seconds[(variant, threads)]
            median = float(np.median(times))
            reference = seconds.get(("reference", threads))
            ratio = f"{np.median(reference) / median:.2f}x" if reference else "-"
            print(
                f"| {variant} | {threads} | {median:.3f} ({min(times):.3f}-{max(times):.3f}) | {1 / median:.2f} | "
                f"{ratio} | {floor_seconds / median:.2f} |"
            )
            result["variants"][f"{variant}/{threads}t"] = {
                "s_per_step": median,
                "steps_per_s": 1 / median,
                "floor_over_time": floor_seconds / median,
                "all": times,
            }
    print()
    for threads in args.threads:
        print(
            f"{threads} thread(s): encoder GEMM ({int(pairs)} x 400 @ 400 x 400) runs at "
            f"{result[f'gemm_gflops_{threads}t']:.0f} GFLOP/s: floor {result[f'floor_s_per_step_{threads}t']:.3f} s "
            f"per step ({1 / result[f'floor_s_per_step_{threads}t']:.2f} steps/s; "
            "fused-shared: 2 forwards + 1 backward)"
        )
    return result


#: the settings whose DDPG and Multi-ReenGAGE are timed side by side: (environment of each task, networks, steps
#: per round, the budget of a run in environment steps)
ALPHA_COST_SETTINGS = {
    "reduced (at most 50 goals, encoder [128,128]->20, head [128], batch 128)": (
        {"DriveSeek": "reengage/DriveSeek50-v0", "NoisySeek": "reengage/NoisySeek50-v0"},
        {"encoder_arch": [128, 128], "head_arch": [128], "batch_size": 128, "embed_dim": 20},
        100,
        80_000,
    ),
    "Table G.4 (up to 200 goals, encoder [400,400]->20, head [400], batch 256)": (
        {"DriveSeek": "reengage/DriveSeek-v0", "NoisySeek": "reengage/NoisySeek-v0"},
        TABLE_G4,
        10,
        160_000,
    ),
}


def alpha_cost(args: argparse.Namespace) -> None:
    """DDPG (alpha 0) against Multi-ReenGAGE (alpha ``--alpha``) on both tasks, the reduced setting and Table G.4's:
    the same networks and training path, timed in ``--rounds`` interleaved rounds (DDPG, Multi-ReenGAGE, DDPG, ...)
    so that load from other processes falls on both alike; medians of ``--clock``, and a run's cost at its budget."""
    import torch

    torch.set_num_threads(args.threads[0])
    variant = args.variants[-1]
    print(f"training path: {variant}, {args.threads[0]} torch thread(s), {args.rounds} rounds, clock: {args.clock}")
    print(
        "| task | setting | DDPG steps/s | Multi-ReenGAGE steps/s | Multi-ReenGAGE / DDPG time "
        "| hours per run (budget, Multi-ReenGAGE) |"
    )
    print("|---|---|---|---|---|---|")
    rows = []
    for setting, (env_ids, arch, steps, budget) in ALPHA_COST_SETTINGS.items():
        for task, env_id in env_ids.items():
            agents = {
                "ddpg": make_agent(env_id, variant, 0.0, arch),
                "multi": make_agent(env_id, variant, args.alpha, arch),
            }
            seconds: dict[str, list[float]] = {name: [] for name in agents}
            for _ in range(args.rounds):
                for name, agent in agents.items():
                    seconds[name].append(time_steps(agent, steps, args.clock) / steps)
            ddpg, multi = (1.0 / statistics.median(seconds[name]) for name in ("ddpg", "multi"))
            hours = budget / multi / 3600
            rows.append({"task": task, "setting": setting, "ddpg_steps_per_s": ddpg, "multi_steps_per_s": multi})
            print(
                f"| {task} | {setting} | {ddpg:.1f} | {multi:.1f} | {ddpg / multi:.2f}x "
                f"| {hours:.1f} ({budget:,} steps) |",
                flush=True,
            )
    if args.json:
        print(json.dumps(rows))


def precision(args: argparse.Namespace) -> dict:
    """bf16 autocast of the encoder against float32: the losses and the critic's gradient on real batches."""
    import torch
    from reengage.agents.fast import multi_goal_update as fused

    torch.set_num_threads(args.threads[0])
    agent = make_agent(args.env, "fused", args.alpha, TABLE_G4)
    agent.learn(args.steps, reset_num_timesteps=False)  # a few updates past the initialisation
    params = list(agent.policy.critic.parameters())
    rows = []
    for index in range(args.rounds):
        np.random.seed(index)
        batch = agent.replay_buffer.sample(TABLE_G4["batch_size"])
        pairs, next_pairs = fused.batch_pairs(batch)
        outcome = {}
        for name, dtype in (("float32", None), ("bfloat16", torch.bfloat16)):
            rng = torch.get_rng_state(), agent.get_reengage_rng_state()
            target = fused.target_terms(agent, batch, next_pairs, True, dtype)
            terms = fused.critic_terms(agent, batch, pairs, target, True, autocast_dtype=dtype)
            loss = terms.td_loss + args.alpha * terms.gate_loss
            grad = torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)])
            outcome[name] = (terms.td_loss.item(), terms.gate_loss.item(), grad)
            torch.set_rng_state(rng[0])
            agent.set_reengage_rng_state(rng[1])
        (td32, gate32, grad32), (td16, gate16, grad16) = outcome["float32"], outcome["bfloat16"]
        rows.append(
            {
                "td_rel_error": abs(td16 - td32) / abs(td32),
                "gate_rel_error": abs(gate16 - gate32) / abs(gate32),
                "grad_rel_error": float((grad16 - grad32).norm() / grad32.norm()),
                "grad_cosine": float(torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)),
            }
        )
    summary = {key: float(np.median([row[key] for row in rows])) for key in rows[0]}
    print(
        f"bf16 autocast of the encoder vs float32, {len(rows)} batches of {TABLE_G4['batch_size']} "
        f"(Table G.4 networks after {agent._n_updates} updates), medians:"
    )
    print(f"  TD loss relative error        {summary['td_rel_error']:.2e}")
    print(f"  Eq. 8.19 loss relative error  {summary['gate_rel_error']:.2e}")
    print(f"  critic gradient relative error {summary['grad_rel_error']:.2e} (cosine {summary['grad_cosine']:.5f})")
    return summary


def profile(args: argparse.Namespace) -> None:
    """torch.profiler's top operators for a few steps of each variant (one thread)."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(args.threads[0])
    for variant in args.variants:
        agent = make_agent(args.env, variant, args.alpha, TABLE_G4)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            time_steps(agent, args.steps)
        print(f"\n## {variant}: {args.steps} steps, {args.threads[0]} thread(s)")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = ("speed", "profile", "precision", "alpha-cost", "memory", "both")
    parser.add_argument("--part", choices=parts, default="both", help="'both' (default) = speed and memory")
    parser.add_argument(
        "--env", default="reengage/DriveSeek-v0", choices=("reengage/DriveSeek-v0", "reengage/NoisySeek-v0")
    )
    parser.add_argument("--variants", nargs="+", default=["reference", "fused"], choices=tuple(VARIANTS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch thread counts to compare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4, help="environment steps per variant and round")
    parser.add_argument("--alpha", type=float, default=10.0)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time steps and the GEMM by wall clock (default) or by this process's CPU time",
    )
    parser.add_argument("--profile-rows", type=int, default=15)
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true", help="print the speed results as one JSON object, last line")
    parser.add_argument("--child-memory", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory is not None:
        print(json.dumps(memory_child(args.child_memory)))
        return
    for name in ("rounds", "steps", "transitions", "profile_rows"):
        if getattr(args, name) < 1:
            flag = "--" + name.replace("_", "-")
            parser.exit(2, f"multi_goal_bench.py: error: {flag} must be >= 1, got {getattr(args, name)}\n")
    if any(t < 1 for t in args.threads):
        parser.exit(2, f"multi_goal_bench.py: error: --threads must be >= 1 each, got {args.threads}\n")
    if args.part == "profile":
        profile(args)
        return
    if args.part == "alpha-cost":
        alpha_cost(args)
        return
    if args.part == "precision":
        summary = precision(args)
        if args.json:
            print(json.dumps(summary))
        return
    result = None
    if args.part in ("speed", "both"):
        result = speed(args)
    if args.part in ("memory", "both"):
        print(json.dumps(memory(args.transitions), indent=1))
    if args.json and result is not None:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
