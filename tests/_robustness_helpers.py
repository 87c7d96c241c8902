"""Hand-made policies for the robustness tests (not a test module)."""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces

from reengage.robustness import PolicyAdapter


def dict_space(d: int, low: float = -5.0, high: float = 5.0, binary: bool = False) -> spaces.Dict:
    part = spaces.MultiBinary(d) if binary else spaces.Box(low, high, (d,), dtype=np.float32)
    return spaces.Dict({"observation": part, "achieved_goal": part, "desired_goal": part})


def linear_discrete(w: np.ndarray, b: float, d: int) -> PolicyAdapter:
    """Two actions: 1 iff w . [observation, achieved_goal] + b > 0. Its Gaussian smoothing is the same halfspace,
    so the exact robust radius of the smoothed policy is |w . x + b| / ||w||."""
    wt = torch.as_tensor(w, dtype=torch.float32)

    def forward(o: dict[str, torch.Tensor]) -> torch.Tensor:
        s = torch.cat([o["observation"], o["achieved_goal"]], -1) @ wt + b
        return torch.stack([torch.zeros_like(s), s], -1)

    return PolicyAdapter(forward, dict_space(d), spaces.Discrete(2))


def random_mlp(d_in: int, n_out: int, seed: int, hidden: int = 64, keys=("observation", "achieved_goal"), goal=True):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Linear(d_in, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, n_out),
    )

    def forward(o: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = [o[k] for k in keys] + ([o["desired_goal"]] if goal else [])
        return net(torch.cat(parts, -1))

    return forward


def make_obs(state: np.ndarray, goal: np.ndarray | None = None) -> dict[str, np.ndarray]:
    goal = np.zeros_like(state) if goal is None else goal
    return {"observation": state.copy(), "achieved_goal": state.copy(), "desired_goal": goal.copy()}
