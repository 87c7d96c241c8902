"""Evaluation of goal-conditioned policies: the paper's success metric is 'goal ever reached'."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass
class EvaluationResult:
    success_rate: float  # fraction of episodes in which is_success was ever 1 (the paper's metric)
    final_success: float  # fraction of episodes that end at the goal
    mean_reward: float  # mean undiscounted episode return
    episodes: int

    def as_scalars(self) -> dict[str, float]:
        return {
            "eval/success_rate": self.success_rate,
            "eval/final_success": self.final_success,
            "eval/mean_reward": self.mean_reward,
        }


def evaluate_goal_policy(
    model: Any, env: gym.Env, episodes: int, first_seed: int, deterministic: bool = True
) -> EvaluationResult:
    """Run ``episodes`` episodes seeded ``first_seed, first_seed + 1, ...`` (the same set every call).

    Environments without ``info["is_success"]`` (the multi-goal ones) report success as NaN.
    """
    if episodes <= 0:
        raise ValueError(f"episodes must be positive, got {episodes}")
    ever, final, returns = [], [], []
    for episode in range(episodes):
        obs, info = env.reset(seed=first_seed + episode)
        done, total, reached, last = False, 0.0, False, float("nan")
        while not done:
            action, _ = model.predict(obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            if "is_success" in info:
                last = float(info["is_success"])
                reached = reached or last > 0.5
            done = terminated or truncated
        returns.append(total)
        ever.append(float(reached) if not np.isnan(last) else np.nan)
        final.append(last)
    return EvaluationResult(float(np.mean(ever)), float(np.mean(final)), float(np.mean(returns)), episodes)
