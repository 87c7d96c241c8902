"""The greedy line of Fig. 8.4: a goal-set environment's "perfect greedy" agent over seeded episodes.

    python -m reengage.greedy --env ID [--episodes N] [--seed S] [--picture FILE.png] [--policy random]

The agents themselves (head for the nearest goal, ignore the rest) are in :mod:`reengage.envs.goal_set_greedy`;
this command runs them through the training loop's own evaluation, over the seeds that loop's evaluations use,
so the printed return is comparable with a run's curve (``report --reference``). ``--policy random`` runs uniformly
random actions instead (drawn from a generator seeded by ``--seed``): the line a learner must rise above.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from reengage.envs.goal_set_greedy import GREEDY_AGENTS, greedy_agent
from reengage.experiment.evaluation import EvaluationResult

PROG = "python -m reengage.greedy"


POLICIES = ("greedy", "random")


class RandomAgent:
    """Uniformly random actions from ``action_space``, drawn from a generator seeded by ``seed`` (reproducible)."""

    def __init__(self, action_space: Any, seed: int) -> None:
        self.action_space = action_space
        self.rng = np.random.default_rng(seed)

    def predict(self, observation: Any, deterministic: bool = True) -> tuple[np.ndarray, None]:
        low, high = self.action_space.low, self.action_space.high
        return self.rng.uniform(low, high).astype(self.action_space.dtype), None


def evaluate_greedy(
    env_id: str, episodes: int, first_seed: int, draw_first: bool = False, policy: str = "greedy"
) -> EvaluationResult:
    """The greedy agent (or, with ``policy="random"``, uniformly random actions) over episodes seeded
    ``first_seed, first_seed + 1, ...`` (the seeds the training
    loop's evaluations use, so its line is comparable with a run's curve), through the loop's own
    evaluation (an ``EvaluationResult``); with ``draw_first`` the first episode's frames are kept, so that
    ``result.final_frame(0)`` is its drawing as a whole (Fig. 8.4 a, c)."""
    import gymnasium as gym

    from reengage.experiment.evaluation import evaluate_goal_policy

    env = gym.make(env_id, render_mode="rgb_array" if draw_first else None)
    agent = greedy_agent(env_id) if policy == "greedy" else RandomAgent(env.action_space, first_seed)
    try:
        return evaluate_goal_policy(agent, env, episodes, first_seed, record_episodes=1 if draw_first else 0)
    finally:
        env.close()


def mean_return(env_id: str, episodes: int, first_seed: int) -> float:
    """The greedy agent's average return over the episodes of :func:`evaluate_greedy`."""
    return float(evaluate_greedy(env_id, episodes, first_seed).mean_reward)


def main(argv: list[str] | None = None) -> int:
    """The greedy line of Fig. 8.4, and a drawing of its first episode (exit code 2 on bad input)."""
    import reengage.envs  # noqa: F401  (registers the ids)
    from reengage.experiment.video import check_picture_path, write_picture

    parser = argparse.ArgumentParser(prog=PROG, description=main.__doc__)
    parser.add_argument("--env", required=True, help=f"one of {', '.join(sorted(GREEDY_AGENTS))}")
    parser.add_argument("--episodes", type=int, default=20, help="episodes (default 20, the docs' evaluations)")
    parser.add_argument("--seed", type=int, default=1_000_000, help="first episode's seed (default: eval_seed's)")
    parser.add_argument(
        "--picture", default=None, metavar="FILE.png", help="also draw the first episode (seed --seed) into FILE.png"
    )
    parser.add_argument(
        "--policy", default="greedy", help="greedy (nearest goal, the default) or random (uniform actions)"
    )
    args = parser.parse_args(argv)
    problems = []
    if args.env not in GREEDY_AGENTS:
        problems.append(f"--env {args.env!r} has no greedy agent; valid: {', '.join(sorted(GREEDY_AGENTS))}")
    if args.policy not in POLICIES:
        problems.append(f"--policy {args.policy!r} is not one of {', '.join(POLICIES)}")
    if args.episodes < 1:
        problems.append(f"--episodes must be >= 1, got {args.episodes}")
    if args.seed < 0:
        problems.append(f"--seed must be >= 0, got {args.seed}")
    if args.picture is not None:
        try:
            check_picture_path(args.picture)
        except ValueError as error:
            problems.append(str(error))
    if problems:
        print(f"{parser.prog}: error: {'; '.join(problems)}", file=sys.stderr)
        return 2
    # one pass: the picture is the first of the evaluated episodes
    result = evaluate_greedy(args.env, args.episodes, args.seed, args.picture is not None, args.policy)
    label = "greedy (nearest goal)" if args.policy == "greedy" else "random (uniform actions)"
    print(
        f"{args.env} {label}: average return {result.mean_reward:.2f} over {args.episodes} episodes from seed {args.seed}"
    )
    if args.picture is not None:
        try:
            path = write_picture(args.picture, result.final_frame(0))
        except OSError as fault:
            from reengage.file_faults import describe_fault, fault_exit_code

            print(f"{parser.prog}: error: {describe_fault(fault)}", file=sys.stderr)
            return fault_exit_code(fault)
        print(f"picture: {path} (episode seed {args.seed}, return {float(result.returns[0]):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
