"""Branching experiment: continue a checkpointed ContinuousSeek run with another ReenGAGE setting.

    python -m reengage.experiment.branch_run runs/d15/a0_s0/checkpoint runs/branch/a0.2_total --alpha 0.2 --steps 4000

Loads ``checkpoint`` (a train.py checkpoint folder with its replay buffer and random states), sets the
goal-gradient weight (and, with ``--partial``, holds the target action fixed in the target gradient),
trains ``--steps`` more environment steps and evaluates 50 episodes every 2000 steps with train.py's
evaluation seeds, writing ``evaluations.csv`` and TensorBoard events (with the diagnostics the run
was started with) under ``out``. With ``--alpha`` equal to the original run's, it continues that run.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

import gymnasium as gym  # noqa: E402
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402

import reengage.envs  # noqa: E402,F401
from reengage.agents.td3 import ReenGAGEDDPG  # noqa: E402
from reengage.experiment.checkpoint import load_checkpoint  # noqa: E402
from reengage.experiment.evaluation import evaluate_goal_policy  # noqa: E402

EVAL_EVERY, EVAL_EPISODES, EVAL_SEED = 2000, 50, 1_000_000  # configs/continuous_seek.yaml and train.py


class _Evaluate(BaseCallback):
    def __init__(self, env: gym.Env, out: Path) -> None:
        super().__init__()
        self.env, self.out, self.rows = env, out, []

    def _on_step(self) -> bool:
        if self.num_timesteps % EVAL_EVERY == 0:
            result = evaluate_goal_policy(self.model, self.env, EVAL_EPISODES, EVAL_SEED)
            self.rows.append({"step": self.num_timesteps, **result.as_scalars()})
            for key, value in result.as_scalars().items():
                self.logger.record(key, value)
            with open(self.out / "evaluations.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(self.rows[0]))
                writer.writeheader()
                writer.writerows(self.rows)
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--alpha", type=float, required=True, help="goal-gradient weight from here on (>= 0)")
    parser.add_argument("--partial", action="store_true", help="hold the target action fixed in the target gradient")
    parser.add_argument("--steps", type=int, default=4000, help="environment steps to add (> 0)")
    args = parser.parse_args(argv)
    if not (args.checkpoint / "replay_buffer.pkl").exists():
        print(f"branch_run: error: {args.checkpoint} is not a checkpoint folder with a replay buffer", file=sys.stderr)
        return 2
    if args.alpha < 0 or args.steps < 1:
        print(f"branch_run: error: need --alpha >= 0 and --steps >= 1, got {args.alpha} and {args.steps}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    model, _ = load_checkpoint(args.checkpoint, ReenGAGEDDPG)
    model.reengage_alpha = args.alpha
    model.reengage_hold_target_action = args.partial
    args.out.mkdir(parents=True, exist_ok=True)
    model.set_logger(configure(str(args.out), ["tensorboard"]))
    space = model.observation_space["desired_goal"]
    env = gym.make("reengage/ContinuousSeek-v0", d=int(space.shape[0]), box=float(space.high.max()))
    model.learn(args.steps, callback=_Evaluate(env, args.out), reset_num_timesteps=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
