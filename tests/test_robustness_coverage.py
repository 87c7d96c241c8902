"""Coverage simulations: over many repetitions, certificates that claim too much occur at most at rate alpha."""

import numpy as np
from _robustness_helpers import make_obs
from scipy.stats import norm
from test_robustness_episode import SIGMA, C, OneStep, _threshold_policy
from test_robustness_soundness import _clip_linear, _smoothed_clip_mean

from reengage.robustness import SmoothedPolicy, SmoothingConfig, certify_continuous_l2, certify_episodes


def _slack(alpha, reps):
    return 3 * np.sqrt(alpha * (1 - alpha) / reps)


def test_episode_success_certificate_false_rate():
    alpha, reps, budgets = 0.2, 150, np.array([0.0, 0.3])
    exact = norm.cdf((C - budgets) / SIGMA)  # worst case over all budget-B adversaries
    sp = SmoothedPolicy(_threshold_policy(), SmoothingConfig(sigma=SIGMA, keys=("obs",)), seed=0)
    false = 0
    for rep in range(reps):
        cert = certify_episodes(sp, OneStep(), 40, budgets, return_range=None, alpha=alpha, seed=rep * 1000)
        false += bool(np.any(cert.success_lower > exact + 1e-12))
    assert false / reps <= alpha + _slack(alpha, reps)


def test_continuous_interval_false_rate():
    w = np.array([0.8, -0.4, 0.3, 0.2])
    sigma, r, alpha, reps = 0.4, 0.3, 0.2, 150
    sp = SmoothedPolicy(_clip_linear(w), SmoothingConfig(sigma=sigma), seed=1)
    obs = make_obs(np.array([0.3, -0.2]))
    x = np.r_[obs["observation"], obs["achieved_goal"]]
    s = sigma * np.linalg.norm(w)
    truths = []
    for sign in (1, -1):
        m = x @ w + sign * r * np.linalg.norm(w)
        truths.append(np.array([_smoothed_clip_mean(m, s), _smoothed_clip_mean(-m, s)]))
    for method in ("bernoulli_cp", "hoeffding"):
        false = 0
        for _ in range(reps):
            cert = certify_continuous_l2(sp, obs, n=60, alpha=alpha, radius=r, method=method)
            lo, hi = np.asarray(cert.details["interval_low"]), np.asarray(cert.details["interval_high"])
            false += any(np.any(t < lo) or np.any(t > hi) for t in truths)
        assert false / reps <= alpha + _slack(alpha, reps)
