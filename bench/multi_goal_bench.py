"""Multi-ReenGAGE cost on this machine: training steps per second and replay memory at 10^6 transitions.

    python bench/multi_goal_bench.py                 # both parts
    python bench/multi_goal_bench.py --part speed    # or --part memory

Speed: environment steps per second while training (train_freq 1, one gradient step each), for DDPG
(alpha 0) and Multi-ReenGAGE (alpha 10) on the same networks, measured side by side in one process,
at two sizes: the small networks of docs/multi_goal.md's budget, and Table G.4's (encoder [400, 400]
-> 20, heads [400], batch 256; only a few steps, it is slow on a CPU).

Memory: a fresh process fills a GoalSetReplayBuffer with 10^6 DriveSeek transitions (25,000 episodes
of 40 steps, each with its own goal set) through ``add()`` and reports its peak resident memory, next
to the size a stable-baselines3 DictReplayBuffer would need for the same data (its arrays' nbytes;
numpy allocates them lazily, so building it costs nothing).
"""

from __future__ import annotations

import argparse
import json
import resource
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
    from stable_baselines3.common.buffers import DictReplayBuffer

    import reengage.envs  # noqa: F401
    from reengage.agents import GoalSetReplayBuffer
    from reengage.envs.drive_seek import sample_drive_seek_goals
    from reengage.envs.goal_set import pad_goal_set

    env = gym.make("reengage/DriveSeek-v0")
    space, action_space = env.observation_space, env.action_space
    baseline_mb = _current_rss_mb()
    buffer = GoalSetReplayBuffer(transitions, space, action_space, device="cpu", initial_goal_sets=1024)
    rng = np.random.default_rng(0)
    horizon = 40
    start = time.perf_counter()
    for episode in range(transitions // horizon):
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
    dict_bytes = sum(a.nbytes for a in dict_buffer.observations.values()) + sum(
        a.nbytes for a in dict_buffer.next_observations.values()
    ) + dict_buffer.actions.nbytes + dict_buffer.rewards.nbytes + dict_buffer.dones.nbytes
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


def speed(env_id: str, arch: dict, steps: int, alpha: float) -> float:
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
        seed=0,
        policy_kwargs={"encoder_arch": arch["encoder_arch"], "net_arch": arch["head_arch"], "embed_dim": 20},
    )
    agent.learn(301)  # fill past learning_starts (random actions), one training step to warm up
    start = time.perf_counter()
    agent.learn(steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


SIZES = {
    "doc budget (encoder [64,64]->20, head [64], batch 64)": (
        {"encoder_arch": [64, 64], "head_arch": [64], "batch_size": 64},
        100,
    ),
    "Table G.4 (encoder [400,400]->20, head [400], batch 256)": (
        {"encoder_arch": [400, 400], "head_arch": [400], "batch_size": 256},
        5,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("speed", "memory", "both"), default="both")
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child-memory", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory is not None:
        print(json.dumps(memory_child(args.child_memory)))
        return
    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {__import__('os').cpu_count()} CPU cores, torch threads {args.threads}")
    if args.part in ("speed", "both"):
        print("| env | networks | DDPG steps/s | Multi-ReenGAGE steps/s | ReenGAGE / DDPG time |")
        print("|---|---|---|---|---|")
        for env_id in ("reengage/DriveSeek-v0", "reengage/NoisySeek-v0"):
            for name, (arch, steps) in SIZES.items():
                ddpg = speed(env_id, arch, steps, 0.0)
                multi = speed(env_id, arch, steps, 10.0)
                print(f"| {env_id} | {name} | {ddpg:.2f} | {multi:.2f} | {ddpg / multi:.2f}x |", flush=True)
    if args.part in ("memory", "both"):
        result = memory(args.transitions)
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
