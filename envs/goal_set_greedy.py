"""The "perfect greedy" baselines of Fig. 8.4: head for the nearest individual goal, ignore the rest.

Both environments are built so that this is not optimal (a lone goal is hard to hit under NoisySeek's
noise; DriveSeek's car cannot stop on a goal or turn sharply), which is why the whole set matters.
Each agent offers ``predict(obs, state=None, episode_start=None, deterministic=True)`` like a
stable-baselines3 model and accepts a single observation or a VecEnv batch.

* NoisySeek: the unit action towards the nearest active goal (Euclidean, from the continuous
  position); zero once exactly on it.
* DriveSeek: steer towards the nearest active goal other than the cell the car is in (distance on the
  torus of side 20, the shortest way round), turning by at most 0.5 rad per step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .drive_seek import HALF_WIDTH, MAX_TURN
from .goal_set import GATES_KEY, GOALS_KEY, STATE_KEY

if TYPE_CHECKING:  # the evaluation lives in the experiment package, imported only when used
    from reengage.experiment.evaluation import EvaluationResult


def _batched(obs: dict[str, np.ndarray], state_dim: int) -> tuple[dict[str, np.ndarray], bool]:
    state = np.asarray(obs[STATE_KEY])
    single = state.ndim == 1
    if single:
        obs = {key: np.asarray(value)[None] for key, value in obs.items()}
    if obs[STATE_KEY].shape[-1] != state_dim:
        raise ValueError(f"expected states of size {state_dim}, got shape {obs[STATE_KEY].shape}")
    return obs, single


class GreedyAgent:
    """Common ``predict`` plumbing; subclasses implement :meth:`act` on one observation."""

    state_dim: int

    def act(self, state: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(
        self,
        observation: dict[str, np.ndarray],
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        obs, single = _batched(observation, self.state_dim)
        actions = np.stack(
            [self.act(obs[STATE_KEY][i], obs[GOALS_KEY][i], obs[GATES_KEY][i]) for i in range(len(obs[STATE_KEY]))]
        ).astype(np.float32)
        return (actions[0] if single else actions), None


class NoisySeekGreedy(GreedyAgent):
    state_dim = 4

    def act(self, state: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
        active = goals[gates > 0]
        if len(active) == 0:
            return np.zeros(2)
        gaps = active - state[None, :2]
        gap = gaps[np.argmin(np.linalg.norm(gaps, axis=1))]
        norm = float(np.linalg.norm(gap))
        return gap / norm if norm > 0 else np.zeros(2)


class DriveSeekGreedy(GreedyAgent):
    state_dim = 6

    def act(self, state: np.ndarray, goals: np.ndarray, gates: np.ndarray) -> np.ndarray:
        position, cell = state[:2], state[2:4]
        heading = float(np.arctan2(state[4], state[5]))
        active = goals[gates > 0]
        active = active[np.any(active != cell[None, :], axis=1)]
        if len(active) == 0:
            return np.zeros(1)
        period = 2.0 * HALF_WIDTH
        gaps = (active - position[None, :] + HALF_WIDTH) % period - HALF_WIDTH  # shortest way round
        gap = gaps[np.argmin(np.linalg.norm(gaps, axis=1))]
        wanted = float(np.arctan2(gap[1], gap[0]))
        turn = (wanted - heading + np.pi) % (2.0 * np.pi) - np.pi
        return np.array([np.clip(turn, -MAX_TURN, MAX_TURN)])


GREEDY_AGENTS = {"reengage/DriveSeek-v0": DriveSeekGreedy, "reengage/NoisySeek-v0": NoisySeekGreedy}


def greedy_agent(env_id: str) -> GreedyAgent:
    """The greedy baseline for a goal-set environment id."""
    if env_id not in GREEDY_AGENTS:
        raise ValueError(f"no greedy agent for {env_id!r}; valid ids: {sorted(GREEDY_AGENTS)}")
    return GREEDY_AGENTS[env_id]()


def evaluate_greedy(env_id: str, episodes: int, first_seed: int, draw_first: bool = False) -> EvaluationResult:
    """The greedy agent over episodes seeded ``first_seed, first_seed + 1, ...`` (the seeds the training
    loop's evaluations use, so its line is comparable with a run's curve), through the loop's own
    evaluation (an ``EvaluationResult``); with ``draw_first`` the first episode's frames are kept, so that
    ``result.final_frame(0)`` is its drawing as a whole (Fig. 8.4 a, c)."""
    import gymnasium as gym

    from reengage.experiment.evaluation import evaluate_goal_policy

    agent = greedy_agent(env_id)
    env = gym.make(env_id, render_mode="rgb_array" if draw_first else None)
    try:
        return evaluate_goal_policy(agent, env, episodes, first_seed, record_episodes=1 if draw_first else 0)
    finally:
        env.close()


def mean_return(env_id: str, episodes: int, first_seed: int) -> float:
    """The greedy agent's average return over the episodes of :func:`evaluate_greedy`."""
    return float(evaluate_greedy(env_id, episodes, first_seed).mean_reward)


def main(argv: list[str] | None = None) -> int:
    """``python -m reengage.envs.goal_set_greedy --env ID [--episodes N] [--seed S] [--picture FILE.png]``:
    the greedy line of Fig. 8.4, and a drawing of its first episode (exit code 2 on bad input)."""
    import argparse
    import sys

    import reengage.envs  # noqa: F401  (registers the ids)
    from reengage.experiment.video import check_picture_path, write_picture

    parser = argparse.ArgumentParser(prog="python -m reengage.envs.goal_set_greedy", description=main.__doc__)
    parser.add_argument("--env", required=True, help=f"one of {', '.join(sorted(GREEDY_AGENTS))}")
    parser.add_argument("--episodes", type=int, default=20, help="episodes (default 20, the docs' evaluations)")
    parser.add_argument("--seed", type=int, default=1_000_000, help="first episode's seed (default: eval_seed's)")
    parser.add_argument("--picture", default=None, metavar="FILE.png",
                        help="also draw the first episode (seed --seed) into FILE.png")
    args = parser.parse_args(argv)
    problems = []
    if args.env not in GREEDY_AGENTS:
        problems.append(f"--env {args.env!r} has no greedy agent; valid: {', '.join(sorted(GREEDY_AGENTS))}")
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
    result = evaluate_greedy(args.env, args.episodes, args.seed, draw_first=args.picture is not None)
    print(f"{args.env} greedy (nearest goal): average return {result.mean_reward:.2f} over {args.episodes} episodes "
          f"from seed {args.seed}")
    if args.picture is not None:
        path = write_picture(args.picture, result.final_frame(0))
        print(f"picture: {path} (episode seed {args.seed}, return {float(result.returns[0]):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
