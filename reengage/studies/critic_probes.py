"""Offline probes of a checkpointed ContinuousSeek DDPG/ReenGAGE run (docs/diagnosis.md).

    python -m reengage.studies.critic_probes runs/d15/a0_s0/checkpoint runs/d15/a0.2_s0/checkpoint

For each checkpoint (a ``checkpoint/`` folder written by train.py, with its replay buffer) it prints:

1. term share: norms of the TD loss's and of ``alpha * L_goal_gradient``'s critic gradients, raw and
   preconditioned by the critic's Adam second moments, per batch and averaged over 16 batches;
2. target actor share: total vs partial (target action held fixed) target goal gradients;
3. stay at the goal: the actor's action and the critic's value when the goal is the current point;
4. the success peak: Q(s, a, g = s' + r u) and |grad_g Q| as the goal moves away from the reached point s'
   by L-infinity radius r (true values: 0 for r <= 0.1 if the policy stays, then -1, -1.95, ...).

Seeds are fixed (torch 0, the buffer's numpy sampling 0); one torch thread.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reengage.agents.td3 import ReenGAGEDDPG  # noqa: E402
from reengage.experiment.checkpoint import BUFFER_FILE, load_checkpoint  # noqa: E402

ALPHA = 0.2


def term_share(model, batches: int = 16) -> str:  # noqa: ANN001
    optimizer = model.critic.optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    scale = [optimizer.state[p]["exp_avg_sq"].sqrt() + 1e-8 for p in params]
    td_sum = [torch.zeros_like(p) for p in params]
    term_sum = [torch.zeros_like(p) for p in params]
    raw_td = raw_term = pre_td = pre_term = 0.0
    for _ in range(batches):
        batch = model.replay_buffer.sample(256, env=None)
        with torch.no_grad():
            next_actions = model.actor_target(batch.next_observations)
            target = batch.rewards + model.gamma * model.critic_target(batch.next_observations, next_actions)[0]
        td = torch.autograd.grad(F.mse_loss(model.critic(batch.observations, batch.actions)[0], target), params)
        loss, _ = model.goal_gradient_loss(batch)
        term = torch.autograd.grad(ALPHA * loss, params, allow_unused=True)
        term = [torch.zeros_like(p) if t is None else t for p, t in zip(params, term)]
        norm = lambda xs: sum(float((x**2).sum()) for x in xs) ** 0.5  # noqa: E731
        raw_td += norm(td)
        raw_term += norm(term)
        pre_td += norm([t / s for t, s in zip(td, scale)])
        pre_term += norm([t / s for t, s in zip(term, scale)])
        for i in range(len(params)):
            td_sum[i] += td[i] / scale[i]
            term_sum[i] += term[i] / scale[i]
    mean_norm = lambda xs: sum(float(((x / batches) ** 2).sum()) for x in xs) ** 0.5  # noqa: E731
    return (
        f"term/TD critic-gradient norm (alpha {ALPHA}): raw {raw_term / raw_td:.4f}, Adam-preconditioned "
        f"{pre_term / pre_td:.4f}, preconditioned mean over {batches} batches {mean_norm(term_sum) / mean_norm(td_sum):.4f}"
    )


def target_actor_share(model) -> str:  # noqa: ANN001
    batch = model.replay_buffer.sample(2048, env=None)
    held = model.reengage_hold_target_action
    model.reengage_hold_target_action = False
    total = model.target_goal_gradient(batch, {})
    model.reengage_hold_target_action = True
    partial = model.target_goal_gradient(batch, {})
    model.reengage_hold_target_action = held
    return (
        f"target goal gradient: |total| {total.norm(dim=1).mean():.3f}, |partial| {partial.norm(dim=1).mean():.3f}, "
        f"cos {F.cosine_similarity(total, partial, dim=1).mean():.3f}, |total - partial| {(total - partial).norm(dim=1).mean():.3f}"
    )


def stay_at_goal(model) -> str:  # noqa: ANN001
    batch = model.replay_buffer.sample(2048, env=None)
    obs = {key: value.clone() for key, value in batch.observations.items()}
    obs["desired_goal"] = obs["achieved_goal"].clone()
    with torch.no_grad():
        actions = model.actor(obs)
        q_policy = model.critic(obs, actions)[0].mean()
        q_still = model.critic(obs, torch.zeros_like(actions))[0].mean()
    return (
        f"goal = current point: mean |pi|_inf {actions.abs().max(-1).values.mean():.2f} (tolerance 0.1), "
        f"Q(s, pi) {q_policy:.2f}, Q(s, 0) {q_still:.2f} (true value of staying: 0)"
    )


def success_peak(model, box: float) -> str:  # noqa: ANN001
    batch = model.replay_buffer.sample(2048, env=None)
    reached = batch.next_observations["achieved_goal"]
    direction = torch.rand_like(reached) * 2 - 1
    direction = direction / direction.abs().max(-1, keepdim=True).values
    parts = []
    for radius in (0.0, 0.05, 0.2, 0.5, 1.0, 2.0):
        goal = (reached + radius * direction).clamp(-box, box).requires_grad_(True)
        q = model.critic({**batch.observations, "desired_goal": goal}, batch.actions)[0]
        (grad,) = torch.autograd.grad(q.sum(), goal)
        parts.append(f"r={radius}: Q {q.mean().item():.2f}, |grad_g Q| {grad.norm(dim=1).mean().item():.2f}")
    return "success peak: " + "; ".join(parts)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    torch.set_num_threads(1)
    for checkpoint in argv:
        if not (Path(checkpoint) / BUFFER_FILE).exists():
            print(
                f"critic_probes: error: {checkpoint} is not a checkpoint folder with a replay buffer", file=sys.stderr
            )
            return 2
        torch.manual_seed(0)
        np.random.seed(0)
        model, _ = load_checkpoint(Path(checkpoint), ReenGAGEDDPG)
        box = float(model.observation_space["desired_goal"].high.max())
        print(f"== {checkpoint} (step {model.num_timesteps})")
        for probe in (term_share(model), target_actor_share(model), stay_at_goal(model), success_peak(model, box)):
            print("  " + probe)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
