"""Branching experiment: continue a checkpointed ContinuousSeek run with another ReenGAGE setting.

    python -m reengage.studies.branch_run runs/d15/a0_s0/checkpoint runs/branch/a0.2_total --alpha 0.2 --steps 4000

Loads ``checkpoint`` (a train.py checkpoint folder with its replay buffer and random states), sets the
goal-gradient weight (and, with ``--partial``, holds the target action fixed in the target gradient;
with ``--matching one_sided``, matches only rows whose critic goal gradient is weaker than its target;
with ``--value-mask V``, a screening variant that was tried and not kept, drops rows whose target
value exceeds V, i.e. rows the target critic already predicts to succeed within a step or two),
trains ``--steps`` more environment steps and evaluates 50 episodes every 2000 steps with train.py's
evaluation seeds, writing ``evaluations.csv`` and TensorBoard events (with the diagnostics the run
was started with) under ``out``. With ``--alpha`` equal to the original run's, it continues that run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym  # noqa: E402
import torch
from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.logger import configure  # noqa: E402
from torch import Tensor

import reengage.envs  # noqa: E402,F401
from reengage import losses  # noqa: E402
from reengage.agents.goal_gradient import with_leaf  # noqa: E402
from reengage.agents.td3 import ReenGAGEDDPG  # noqa: E402
from reengage.experiment.checkpoint import BUFFER_FILE, load_checkpoint  # noqa: E402
from reengage.experiment.evaluation import evaluate_goal_policy  # noqa: E402
from reengage.experiment.run_folder import RunFolder  # noqa: E402

EVAL_EVERY, EVAL_EPISODES, EVAL_SEED = 2000, 50, 1_000_000  # configs/continuous_seek.yaml and train.py


class _Evaluate(BaseCallback):
    def __init__(self, env: gym.Env, out: Path) -> None:
        super().__init__()
        self.env, self.out = env, out
        self.rows: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        if self.num_timesteps % EVAL_EVERY == 0:
            result = evaluate_goal_policy(self.model, self.env, EVAL_EPISODES, EVAL_SEED)
            self.rows.append({"step": self.num_timesteps, **result.as_scalars()})
            for key, value in result.as_scalars().items():
                self.logger.record(key, value)
            RunFolder(self.out).write_evaluations(self.rows)
        return True


class ValueMaskedDDPG(ReenGAGEDDPG):
    """Screening variant (not a toolkit option): no term on rows whose target value exceeds a threshold.

    Sparse mode, no dimension weights, no VecNormalize: the setting of the branch experiments only.
    """

    value_mask_threshold: float = 0.0

    def goal_gradient_loss(self, batch, context=None) -> tuple[Tensor, float]:  # type: ignore[no-untyped-def]
        context = self._batch_context(batch) if context is None else context
        next_obs, next_goal = with_leaf(batch.next_observations, self.reengage_goal_key)
        value = self._target_value(next_obs, batch, context)
        (next_goal_grad,) = torch.autograd.grad(value.sum(), next_goal)
        keep = (value.detach() <= self.value_mask_threshold).to(next_goal_grad.dtype)
        mask = losses.sparse_reward_mask(batch.rewards, self.c_low) * keep
        target = self.gamma * (1 - batch.dones) * next_goal_grad
        total = sum(
            losses.goal_gradient_mse(mask * q_grad, mask * target)
            for q_grad in self.critic_goal_gradients(batch.observations, batch.actions)
        )
        self.logger.record_mean("branch/value_mask_kept_fraction", float(keep.mean()))
        return total, 1.0 - float(mask.mean())  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--alpha", type=float, required=True, help="goal-gradient weight from here on (>= 0)")
    parser.add_argument("--partial", action="store_true", help="hold the target action fixed in the target gradient")
    parser.add_argument("--matching", choices=losses.MATCHINGS, default="full", help="which rows the term matches")
    parser.add_argument(
        "--value-mask",
        type=float,
        default=None,
        metavar="V",
        help="screening variant: no term where the target value exceeds V (not with --matching)",
    )
    parser.add_argument("--steps", type=int, default=4000, help="environment steps to add (> 0)")
    args = parser.parse_args(argv)
    if not (args.checkpoint / BUFFER_FILE).exists():
        print(f"branch_run: error: {args.checkpoint} is not a checkpoint folder with a replay buffer", file=sys.stderr)
        return 2
    if args.alpha < 0 or args.steps < 1:
        print(
            f"branch_run: error: need --alpha >= 0 and --steps >= 1, got {args.alpha} and {args.steps}", file=sys.stderr
        )
        return 2
    if args.value_mask is not None and args.matching != "full":
        print("branch_run: error: --value-mask is its own variant; leave --matching at 'full'", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    model, _ = load_checkpoint(args.checkpoint, ReenGAGEDDPG)
    if args.value_mask is not None:
        model.__class__ = ValueMaskedDDPG
        model.value_mask_threshold = args.value_mask
    model.reengage_alpha = args.alpha
    model.reengage_hold_target_action = args.partial
    model.reengage_matching = args.matching
    args.out.mkdir(parents=True, exist_ok=True)
    model.set_logger(configure(str(args.out), ["tensorboard"]))
    space = model.observation_space["desired_goal"]
    env = gym.make("reengage/ContinuousSeek-v0", d=int(space.shape[0]), box=float(space.high.max()))
    model.learn(args.steps, callback=_Evaluate(env, args.out), reset_num_timesteps=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
