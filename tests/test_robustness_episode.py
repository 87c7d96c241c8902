"""Episode certificates by policy smoothing: a one-step environment with an exact answer, returns, refusals."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from scipy.stats import norm

from reengage.robustness import (
    PolicyAdapter,
    SmoothedPolicy,
    SmoothingConfig,
    certify_episodes,
    certify_return,
    certify_success,
)
from reengage.robustness.episode import run_episodes, smoothed_event_lower_bound

C, SIGMA = 0.8, 0.5


class OneStep(gym.Env):
    """Observation x = 0 (1-d); action 1 succeeds. The policy picks 1 iff its (noisy) x < C."""

    observation_space = spaces.Box(-10, 10, (1,), dtype=np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action):
        ok = int(action) == 1
        return np.zeros(1, dtype=np.float32), float(ok) - 1.0, True, False, {"is_success": ok}


def _threshold_policy():
    def forward(o):
        x = o["obs"][:, 0]
        return torch.stack([x - C, C - x], -1)

    return PolicyAdapter(forward, OneStep.observation_space, OneStep.action_space)


def test_one_step_certified_success_equals_phi_c_minus_b_over_sigma():
    budgets = np.array([0.0, 0.25, 0.5, 1.0])
    exact = norm.cdf((C - budgets) / SIGMA)
    # with the exact clean probability Phi(C / sigma) the bound is exactly the worst case
    assert np.allclose(smoothed_event_lower_bound(norm.cdf(C / SIGMA), budgets, SIGMA), exact, atol=1e-12)
    sp = SmoothedPolicy(_threshold_policy(), SmoothingConfig(sigma=SIGMA, keys=("obs",)), seed=0)
    cert = certify_episodes(sp, OneStep(), 4000, budgets, return_range=(-1.0, 0.0), alpha=0.05, seed=0)
    # certified from samples: never above the exact worst case, and within ~0.02 of it
    assert np.all(cert.success_lower <= exact + 1e-12)
    assert np.all(exact - cert.success_lower < 0.045)
    # the actual worst-case adversary (shift x by +B) meets the bound: its success rate >= the certificate
    for b, lower in zip(budgets, cert.success_lower):
        _, succ = run_episodes(sp, OneStep(), 3000, seed=7, perturb=lambda o, t, b=b: o + b)
        assert succ.mean() >= lower - 0.01
        assert succ.mean() == pytest.approx(norm.cdf((C - b) / SIGMA), abs=0.03)
    # return in [-1, 0] equals success - 1 here, so its certificate is close to the success one shifted
    assert np.all(cert.return_lower <= exact - 1 + 1e-9)
    assert np.all(cert.return_lower >= cert.success_lower - 1 - 0.05)


def test_negative_return_bound_is_sound_against_closed_form():
    rng = np.random.default_rng(0)
    # returns uniform on [-10, -2]: E = -6; at B = 0 the bound is below -6 and close to it with many samples
    r = rng.uniform(-10, -2, 20_000)
    low = certify_return(r, 1.0, [0.0, 1.0], return_range=(-10.0, 0.0), alpha=0.05)
    assert low[0] <= -6 + 0.01 and low[0] > -6.3
    assert low[1] < low[0]  # a budget only lowers the guarantee
    with pytest.raises(ValueError, match="outside the declared"):
        certify_return(r, 1.0, [0.0], return_range=(-5.0, 0.0))


def test_episode_refusals():
    with pytest.raises(ValueError, match="open interval"):
        certify_success(np.ones(10), 0.5, [0.0], alpha=1.2)
    with pytest.raises(ValueError, match="budgets"):
        certify_success(np.ones(10), 0.5, [-1.0])
    sp = SmoothedPolicy(
        PolicyAdapter(lambda o: torch.zeros(o["obs"].shape[0], 2), OneStep.observation_space, OneStep.action_space),
        SmoothingConfig(kind="ablation", retain=1, keys=("obs",)),
    )
    with pytest.raises(ValueError, match="gaussian"):
        certify_episodes(sp, OneStep(), 5, [0.0], None)
