#!/usr/bin/env python
"""Would ``torch.compile`` pay on the hand-written critic step? Eager against compiled, side by side.

    python bench/bench_compile_update.py [--rounds 7] [--calls 200] [--threads 1]

Times one function that does what ``fast.td3_manual.critic_gradients`` does for a 2x256 ReLU critic on
ContinuousSeek d = 20 with the ReenGAGE term (batch 256, critic input 80 = 60 observation + 20 action, goal
columns 20:40): the forward, the TD loss, the critic's goal gradient, the sparse term's residual and every
parameter gradient (with the top-layer saving of :func:`reengage.agents.manual_mlp.value_head_backward`),
written as one pure function of tensors so that ``torch.compile`` (inductor, CPU) can fuse its elementwise
work. Random weights of the benchmark's shapes; the target and the optimiser step are left out. Prints the
compile time, the largest difference between the two results, and the median milliseconds per call of each
over interleaved rounds (process CPU time).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import Tensor

BATCH, INPUTS, HIDDEN, GOAL = 256, 80, 256, slice(20, 40)


def critic_step(
    w1: Tensor,
    b1: Tensor,
    w2: Tensor,
    b2: Tensor,
    w3: Tensor,
    b3: Tensor,
    z: Tensor,
    target_q: Tensor,
    target_goal_grad: Tensor,
    mask: Tensor,
    alpha: float,
) -> tuple[Tensor, ...]:
    """TD loss, term loss and the critic's parameter gradients of ``L_TD + alpha * L_term`` (hand-written)."""
    relu_backward = torch.ops.aten.threshold_backward
    h1 = torch.relu(torch.addmm(b1, z, w1.t()))
    h2 = torch.relu(torch.addmm(b2, h1, w2.t()))
    error = torch.addmm(b3, h2, w3.t()) - target_q
    dq = error * (2.0 / z.shape[0])
    m2 = relu_backward(torch.ones_like(h2), h2, 0)
    u1 = relu_backward((m2 * w3) @ w2, h1, 0)
    residual = mask * (u1 @ w1[:, GOAL]) - mask * target_goal_grad
    e = (2.0 * alpha / residual.numel()) * residual
    rhs = dq * z
    rhs = torch.cat([rhs[:, : GOAL.start], rhs[:, GOAL] + e, rhs[:, GOAL.stop :]], dim=1)
    dw1, db1 = u1.t() @ rhs, (dq.t() @ u1).view(-1)
    products = m2.t() @ (relu_backward(e @ w1[:, GOAL].t(), h1, 0) + dq * h1)
    active = dq.t() @ m2
    dw2, db2 = w3.t() * products, (w3 * active).view(-1)
    dw3 = (w2 * products).sum(dim=1).view(1, -1) + b2.view(1, -1) * active
    return (error * error).mean(), (residual * residual).mean(), dw1, db1, dw2, db2, dw3, dq.sum(dim=0)


def cpu_ms_per_call(function, arguments: list, calls: int) -> float:
    for _ in range(10):
        function(*arguments)
    start = time.process_time()
    for _ in range(calls):
        function(*arguments)
    return 1000 * (time.process_time() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)

    def randn(*shape: int, scale: float = 1.0) -> Tensor:
        return scale * torch.randn(*shape, generator=generator)

    arguments = [
        randn(HIDDEN, INPUTS, scale=0.1),
        randn(HIDDEN, scale=0.1),
        randn(HIDDEN, HIDDEN, scale=0.06),
        randn(HIDDEN, scale=0.1),
        randn(1, HIDDEN, scale=0.06),
        randn(1),
        randn(BATCH, INPUTS),
        randn(BATCH, 1),
        randn(BATCH, GOAL.stop - GOAL.start),
        (torch.rand(BATCH, 1, generator=generator) > 0.5).float(),
        0.2,
    ]
    start = time.perf_counter()
    compiled = torch.compile(critic_step, dynamic=False)
    compiled_result = compiled(*arguments)
    compile_seconds = time.perf_counter() - start
    eager_result = critic_step(*arguments)
    difference = max(
        float((a - b).abs().max() / b.abs().max().clamp_min(1e-12)) for a, b in zip(compiled_result, eager_result)
    )
    eager, fused = [], []
    for _ in range(args.rounds):
        eager.append(cpu_ms_per_call(critic_step, arguments, args.calls))
        fused.append(cpu_ms_per_call(compiled, arguments, args.calls))
    print(
        f"critic step with the term, 2x256, batch {BATCH}, {args.threads} thread(s), {args.rounds} interleaved rounds "
        f"of {args.calls} calls"
    )
    print(f"  compile time {compile_seconds:.1f} s; largest relative difference compiled vs eager {difference:.1e}")
    print(f"  eager    {statistics.median(eager):.3f} ms/call (range {min(eager):.3f}-{max(eager):.3f})")
    print(
        f"  compiled {statistics.median(fused):.3f} ms/call (range {min(fused):.3f}-{max(fused):.3f}); "
        f"eager / compiled {statistics.median(eager) / statistics.median(fused):.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
