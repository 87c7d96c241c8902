"""Benchmark: time of one 10,000-sample per-state certificate for a 2x256 MLP policy (target < 0.2 s), and policy
evaluations per second, batched vs one observation per call (SB3 ``predict``), measured side by side.

    python bench/bench_certify.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import gymnasium as gym
import numpy as np
import reengage.envs  # noqa: F401
import torch
from stable_baselines3 import DQN, TD3

from reengage.robustness import SmoothedPolicy, SmoothingConfig, certify_continuous_l2, certify_discrete_l2


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 avoids contention on a shared 2-core box)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    arch = {"net_arch": [256, 256]}
    cs = gym.make("reengage/ContinuousSeek5-v0")
    td3 = TD3("MultiInputPolicy", cs, policy_kwargs=arch, buffer_size=10, seed=0, device="cpu")
    bf = gym.make("reengage/BitFlipping-v0", n_bits=20)
    dqn = DQN("MultiInputPolicy", bf, policy_kwargs=arch, buffer_size=10, seed=0, device="cpu")
    cs_obs, _ = cs.reset(seed=0)
    bf_obs, _ = bf.reset(seed=0)
    rows = []

    sp_c = SmoothedPolicy(td3, SmoothingConfig(sigma=0.25), seed=0)
    t_c = timed(lambda: certify_continuous_l2(sp_c, cs_obs, n=10_000, alpha=0.001, tolerance=0.5), args.repeats)
    rows.append(("continuous l2 (TD3 actor 2x256, ContinuousSeek5), n=10,000", t_c))
    sp_d = SmoothedPolicy(dqn, SmoothingConfig(sigma=0.25), seed=0)
    t_d = timed(lambda: certify_discrete_l2(sp_d, bf_obs, n0=100, n=10_000, alpha=0.001), args.repeats)
    rows.append(("discrete l2 Cohen (DQN 2x256, BitFlipping20), n0=100 + n=10,000", t_d))
    sp_1k = SmoothedPolicy(td3, SmoothingConfig(sigma=0.25), seed=0, batch_size=1000)
    t_1k = timed(lambda: certify_continuous_l2(sp_1k, cs_obs, n=10_000, alpha=0.001, tolerance=0.5), args.repeats)
    rows.append(("continuous l2, batch_size=1000 instead of 10,000", t_1k))

    # the floor: the bare 2x256 actor on 10,000 ready-made inputs (no noise, no bookkeeping)
    x = {k: torch.as_tensor(np.repeat(v[None], 10_000, 0), dtype=torch.float32) for k, v in cs_obs.items()}
    with torch.no_grad():
        t_bare = timed(lambda: td3.policy.actor(x), args.repeats)
    rows.append(("floor: bare TD3 actor forward on 10,000 inputs", t_bare))

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}, torch threads {torch.get_num_threads()}"
    )
    print(f"{'certificate':72s} {'median s':>9s} {'target':>7s}")
    for name, t in rows:
        print(f"{name:72s} {t:9.3f} {'<0.2 s':>7s} {'OK' if t < 0.2 else 'MISS'}")
    print(f"overhead of the continuous certificate over the bare forward pass: {t_c / t_bare:.2f}x")

    # policy evaluations per second: batched smoothing vs SB3 predict one observation per call
    n_batch = 10_000
    t_batched = timed(lambda: sp_c.sample(cs_obs, n_batch), args.repeats)
    n_single = 300
    t_single = timed(lambda: [td3.predict(cs_obs, deterministic=True) for _ in range(n_single)], 1)
    eps_b, eps_s = n_batch / t_batched, n_single / t_single
    print(f"policy evaluations/s, batched (10,000 noisy copies per call): {eps_b:,.0f}")
    print(f"policy evaluations/s, SB3 predict one at a time:                {eps_s:,.0f}")
    print(f"ratio batched / one-at-a-time: {eps_b / eps_s:.0f}x")


if __name__ == "__main__":
    main()
