"""Evaluation of goal-conditioned policies over a fixed set of seeded episodes.

Metric names say what they measure:

* ``eval/success_ever``: fraction of episodes in which the goal was reached at some step (the
  paper's success metric for ContinuousSeek and bit flipping);
* ``eval/success_final``: fraction of episodes that end at the goal (what stable-baselines3's
  ``rollout/success_rate`` reports for training episodes: ``is_success`` at the last step);
* ``eval/mean_return`` / ``eval/std_return``: undiscounted episode return (the paper's metric for the
  goal-set environments DriveSeek and NoisySeek, where a success rate would count any item reached
  and is 1.0 almost at once, so it is not reported for them);
* ``eval/mean_length``: episode length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

SUCCESS_EVER = "eval/success_ever"
SUCCESS_FINAL = "eval/success_final"
MEAN_RETURN = "eval/mean_return"
STD_RETURN = "eval/std_return"
MEAN_LENGTH = "eval/mean_length"
# the name success_ever had in evaluations.csv before 0.2.0: no longer written, still read (files written before
# carry it beside success_ever, equal to it), and still accepted as a report metric, meaning success_ever
LEGACY_SUCCESS = "eval/success_rate"
# the columns of evaluations.csv after "step" (what an experiment file's report.metric may name)
EVALUATION_COLUMNS = (SUCCESS_EVER, SUCCESS_FINAL, MEAN_RETURN, STD_RETURN, MEAN_LENGTH)


def reports_success(env: gym.Env) -> bool:
    """Whether a success rate means anything for ``env``: not for the goal-set environments, whose
    per-step ``is_success`` says only that some item was reached (their metric is the return)."""
    from reengage.envs.goal_set import GoalSetEnv

    return not isinstance(env.unwrapped, GoalSetEnv)


@dataclass
class EvaluationResult:
    """Per-episode results of one evaluation; success arrays hold NaN where success is not reported."""

    seeds: np.ndarray
    success_ever: np.ndarray
    success_final: np.ndarray
    returns: np.ndarray
    lengths: np.ndarray
    reports_success: bool = True
    frames: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def episodes(self) -> int:
        return len(self.returns)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.success_ever))

    @property
    def final_success(self) -> float:
        return float(np.mean(self.success_final))

    @property
    def mean_reward(self) -> float:
        return float(np.mean(self.returns))

    def final_frame(self, episode: int = 0) -> np.ndarray:
        """The frame after the last step of recorded ``episode``: its picture as a whole.

        Each recorded episode contributes its reset frame and one frame per step.
        """
        # index of each episode's reset frame, and how many episodes have all their frames
        starts = np.concatenate([[0], np.cumsum(np.asarray(self.lengths, dtype=int) + 1)])
        recorded = int(np.searchsorted(starts, len(self.frames), side="right")) - 1
        if not 0 <= episode < recorded:
            held = f"episodes 0 to {recorded - 1}" if recorded else "no episode"
            raise ValueError(f"episode {episode} was not recorded; the frames hold {held}")
        return self.frames[int(starts[episode] + self.lengths[episode])]

    def as_scalars(self) -> dict[str, float]:
        """Summary numbers, keyed by their TensorBoard names (success keys only where meaningful)."""
        scalars = {}
        if self.reports_success:
            scalars[SUCCESS_EVER] = self.success_rate
            scalars[SUCCESS_FINAL] = self.final_success
        scalars[MEAN_RETURN] = self.mean_reward
        scalars[STD_RETURN] = float(np.std(self.returns))
        scalars[MEAN_LENGTH] = float(np.mean(self.lengths))
        return scalars

    def csv_row(self, step: int) -> dict[str, float]:
        """One row of evaluations.csv: every column always present (NaN where not reported)."""
        return {
            "step": step,
            SUCCESS_EVER: self.success_rate,
            SUCCESS_FINAL: self.final_success,
            MEAN_RETURN: self.mean_reward,
            STD_RETURN: float(np.std(self.returns)),
            MEAN_LENGTH: float(np.mean(self.lengths)),
        }

    def episode_rows(self, step: int) -> list[dict[str, Any]]:
        """Rows of episodes.csv: one per episode."""
        return [
            {
                "step": step,
                "episode": index,
                "seed": int(self.seeds[index]),
                "success_ever": float(self.success_ever[index]),
                "success_final": float(self.success_final[index]),
                "return": float(self.returns[index]),
                "length": int(self.lengths[index]),
            }
            for index in range(self.episodes)
        ]

    def summary(self) -> str:
        """One line: success (when meaningful) and return with its spread."""
        parts = []
        if self.reports_success:
            reached = int(np.nansum(self.success_ever))
            parts.append(f"success_ever {self.success_rate:.2f} ({reached}/{self.episodes})")
            parts.append(f"success_final {self.final_success:.2f}")
        parts.append(f"return {self.mean_reward:.2f} +- {float(np.std(self.returns)):.2f}")
        parts.append(f"{self.episodes} episodes")
        return ", ".join(parts)


def evaluate_goal_policy(
    model: Any,
    env: gym.Env,
    episodes: int,
    first_seed: int,
    deterministic: bool = True,
    record_episodes: int = 0,
) -> EvaluationResult:
    """Run ``episodes`` episodes seeded ``first_seed, first_seed + 1, ...`` (the same set every call).

    Environments without ``info["is_success"]`` and the goal-set environments report success as NaN.
    ``record_episodes`` > 0 keeps the ``env.render()`` frames of that many first episodes (the env
    must have been made with ``render_mode="rgb_array"``).
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    with_success = reports_success(env)
    ever, final, returns, lengths, frames = [], [], [], [], []
    for episode in range(episodes):
        recording = episode < record_episodes
        obs, info = env.reset(seed=first_seed + episode)
        if recording:
            frames.append(env.render())
        done, total, reached, last, length = False, 0.0, False, float("nan"), 0
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            if recording:
                frames.append(env.render())
            total += float(reward)
            length += 1
            if "is_success" in info:
                last = float(info["is_success"])
                reached = reached or last > 0.5
            done = terminated or truncated
        returns.append(total)
        lengths.append(length)
        known = with_success and not np.isnan(last)
        ever.append(float(reached) if known else np.nan)
        final.append(last if known else np.nan)
    seeds = np.arange(first_seed, first_seed + episodes)
    return EvaluationResult(
        seeds, np.array(ever), np.array(final), np.array(returns), np.array(lengths), with_success, frames
    )
