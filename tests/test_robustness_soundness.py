"""Soundness tests that try to break the l2 certificates (discrete Cohen, relaxed, continuous bounded output)."""

import numpy as np
import pytest
import torch
from _robustness_helpers import dict_space, linear_discrete, make_obs, random_mlp
from gymnasium import spaces
from scipy import integrate
from scipy.stats import norm

from reengage.robustness import (
    PolicyAdapter,
    SmoothedPolicy,
    SmoothingConfig,
    attacks,
    certify_continuous_l2,
    certify_discrete_l2,
    certify_relaxed,
)
from reengage.robustness.certificates import cohen_from_batches

W = np.array([1.0, -2.0, 0.5, 0.0, 0.3, 0.0, 0.0, 1.0])


def _linear(sigma=0.5, seed=0):
    return SmoothedPolicy(linear_discrete(W, 0.2, 4), SmoothingConfig(sigma=sigma), seed=seed)


def _true_radius(obs):
    x = np.r_[obs["observation"], obs["achieved_goal"]]
    return abs(x @ W + 0.2) / np.linalg.norm(W)


def test_linear_policy_radius_never_above_closed_form_and_close_with_many_samples():
    rng = np.random.default_rng(1)
    sp = _linear()
    gaps = []
    for _ in range(12):
        obs = make_obs(rng.uniform(-0.4, 0.4, 4))
        cert = certify_discrete_l2(sp, obs, n0=100, n=100_000, alpha=0.001)
        true = _true_radius(obs)
        x = np.r_[obs["observation"], obs["achieved_goal"]]
        if cert.radius is not None:
            assert cert.action == int(x @ W + 0.2 > 0)
            assert cert.radius <= true + 1e-9
            gaps.append(true - cert.radius)
    assert len(gaps) >= 8
    # with 1e5 samples the bound is within a few hundredths of the exact radius (sigma = 0.5)
    assert np.median(gaps) < 0.03


def test_false_certificate_rate_at_most_alpha():
    """Repeat the certificate many times at a state where it is tight; count radii above the true one."""
    alpha, reps = 0.1, 400
    sp = _linear(sigma=0.5, seed=3)
    obs = make_obs(np.array([0.3, 0.1, 0.0, 0.0]))
    true = _true_radius(obs)
    false = 0
    for _ in range(reps):
        cert = certify_discrete_l2(sp, obs, n0=20, n=200, alpha=alpha)
        false += cert.radius is not None and (cert.radius > true or cert.action != 1)
    rate = false / reps
    assert rate <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / reps)
    # the bound is not vacuous either: it certifies most of the time
    certified = sum(certify_discrete_l2(sp, obs, 20, 200, alpha).radius is not None for _ in range(50))
    assert certified > 25


def test_pgd_inside_certified_radius_never_breaks_the_bound():
    """Random 2x64 MLP: at ||delta|| <= R the smoothed top-action probability stays >= Phi(PhiInv(pA) - ||delta||/sigma)."""
    sigma = 0.5
    adapter = PolicyAdapter(random_mlp(12, 3, seed=0), dict_space(4), spaces.Discrete(3))
    sp = SmoothedPolicy(adapter, SmoothingConfig(sigma=sigma), seed=0)
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(10):
        obs = make_obs(rng.uniform(-2, 2, 4), rng.uniform(-2, 2, 4))
        cert = certify_discrete_l2(sp, obs, n0=100, n=10_000, alpha=0.001)
        if cert.radius is None:
            continue
        a, r = cert.action, cert.radius
        delta = attacks.pgd_l2(sp, obs, r, a, steps=15, n_noise=128, rng=rng)
        assert np.linalg.norm(delta) <= r + 1e-5
        moved = sp.with_state(sp.as_dict(obs), sp.flat_state(sp.as_dict(obs)) + delta)
        n = 20_000
        p_hat = sp.counts(sp.sample(moved, n))[a] / n
        bound = norm.cdf(norm.ppf(cert.details["p_lower"]) - np.linalg.norm(delta) / sigma)
        assert p_hat >= bound - 4 * np.sqrt(0.25 / n)
        checked += 1
    assert checked >= 5


def test_relaxed_acceptable_set_and_top_k():
    sp = _linear(sigma=0.5)
    obs = make_obs(np.array([0.05, 0.0, 0.0, 0.0]))
    cohen = certify_discrete_l2(sp, obs, 100, 20_000, 0.001)
    top1 = certify_relaxed(sp, obs, top_k=1, n0=100, n=20_000, alpha=0.001)
    everything = certify_relaxed(sp, obs, acceptable=[0, 1], n0=100, n=20_000)
    assert everything.radius == float("inf")
    # top-1 set = {smoothed action}; never above the exact radius
    assert top1.action == [1] and top1.radius <= _true_radius(obs)
    assert cohen.radius is not None and abs(top1.radius - cohen.radius) < 0.05


def test_relaxed_set_radius_exceeds_cohen_on_three_actions():
    """Three actions where two acceptable ones share the mass: Cohen abstains, the set certificate does not."""
    space = dict_space(2)

    def forward(o):
        x = o["observation"][:, 0]
        # action 0 if x < -1, action 1 if -1 <= x < 1 (coin with 2), action 2 otherwise
        s = torch.stack([-(x + 1), torch.zeros_like(x), x - 1], -1)
        return s + 0.0 * o["observation"][:, 1:2]

    sp = SmoothedPolicy(
        PolicyAdapter(forward, space, spaces.Discrete(3)), SmoothingConfig(sigma=1.0, keys=("observation",)), 0
    )
    obs = make_obs(np.array([1.0, 0.0]))
    assert certify_discrete_l2(sp, obs, 100, 20_000, 0.001).radius is None
    rel = certify_relaxed(sp, obs, acceptable=[1, 2], n0=100, n=20_000)
    assert rel.radius is not None and rel.radius > 0.3


def test_reused_samples_refused():
    sp = _linear()
    obs = make_obs(np.array([0.3, 0.1, 0.0, 0.0]))
    batch = sp.sample(obs, 500)
    with pytest.raises(ValueError, match="reused"):
        cohen_from_batches(sp, batch, batch, 0.01)


def _clip_linear(w):
    wt = torch.as_tensor(w, dtype=torch.float32)

    def forward(o):
        x = torch.cat([o["observation"], o["achieved_goal"]], -1)
        return torch.stack([x @ wt, -(x @ wt)], -1)  # clipped to [-1, 1] by the adapter

    return PolicyAdapter(forward, dict_space(2), spaces.Box(-1, 1, (2,)))


def _smoothed_clip_mean(m, s):
    """E clip(Z, -1, 1) for Z ~ N(m, s^2) = -1 + int_{-1}^{1} P(Z > t) dt."""
    return -1.0 + integrate.quad(lambda t: norm.sf((t - m) / s), -1, 1)[0]


def test_continuous_intervals_contain_true_smoothed_action_under_worst_case_shift():
    w = np.array([0.8, -0.4, 0.3, 0.2])
    sigma = 0.4
    sp = SmoothedPolicy(_clip_linear(w), SmoothingConfig(sigma=sigma), seed=0)
    obs = make_obs(np.array([0.3, -0.2]))
    x = np.r_[obs["observation"], obs["achieved_goal"]]
    s = sigma * np.linalg.norm(w)
    misses = 0
    for method in ("bernoulli_cp", "hoeffding"):
        for r in (0.0, 0.2, 0.5):
            cert = certify_continuous_l2(sp, obs, n=20_000, alpha=0.01, radius=r, method=method)
            lo, hi = np.asarray(cert.details["interval_low"]), np.asarray(cert.details["interval_high"])
            for sign in (1, -1):  # the worst shift moves w . x by r ||w|| either way
                m = x @ w + sign * r * np.linalg.norm(w)
                true = np.array([_smoothed_clip_mean(m, s), _smoothed_clip_mean(-m, s)])
                misses += int(np.any(true < lo - 1e-9) or np.any(true > hi + 1e-9))
    assert misses == 0


def test_continuous_tolerance_radius_is_sound_and_refuses_bad_tolerance():
    w = np.array([0.8, -0.4, 0.3, 0.2])
    sigma = 0.4
    sp = SmoothedPolicy(_clip_linear(w), SmoothingConfig(sigma=sigma), seed=0)
    obs = make_obs(np.array([0.3, -0.2]))
    cert = certify_continuous_l2(sp, obs, n=20_000, alpha=0.01, tolerance=0.3)
    r = cert.radius
    assert r is not None and 0 < r < np.inf
    x = np.r_[obs["observation"], obs["achieved_goal"]]
    s = sigma * np.linalg.norm(w)
    center = np.array([_smoothed_clip_mean(x @ w, s), _smoothed_clip_mean(-(x @ w), s)])
    for sign in (1, -1):
        m = x @ w + sign * r * np.linalg.norm(w)
        moved = np.array([_smoothed_clip_mean(m, s), _smoothed_clip_mean(-m, s)])
        # within tolerance of the estimated centre, which is within a hair of the true centre
        assert np.all(np.abs(moved - center) <= 0.3 + 0.02)
    # PGD at the certified radius cannot push the estimated mean action out of the band
    delta = attacks.pgd_l2(sp, obs, r, cert.details["mean_action"], steps=15, n_noise=256)
    assert not attacks.decision_changed(sp, obs, delta, cert.details["mean_action"], n=20_000, tolerance=0.3 + 0.02)
    for bad in (0.0, -0.1, 2.5):
        with pytest.raises(ValueError, match="tolerance"):
            certify_continuous_l2(sp, obs, n=100, tolerance=bad)
