"""The attack bracket "robust fraction <= U" is a bound (regression): only confirmed breaks count."""

import argparse

import numpy as np
import pytest
from _robustness_helpers import linear_discrete, make_obs

from reengage.robustness import SmoothedPolicy, SmoothingConfig, certify_discrete_l2, population_estimate
from reengage.robustness.attacks import discrete_break_from_counts
from reengage.robustness.cli import attack_state
from reengage.robustness.population import attack_test_level


def _attack_args(**overrides):
    args = dict(attack_steps=20, attack_n=2000, max_hamming=2)
    args.update(overrides)
    return argparse.Namespace(**args)


def test_linear_policy_at_radius_1_02_eps_is_not_called_broken():
    """Regression: 30 states whose exact radius is 1.02 eps (true robust fraction 1) got 6 of 30 flagged, U = 0.909.
    The PGD attack reaches the boundary's neighbourhood (vote near 1/2) but no break is confirmed: U = 1."""
    d, sigma, eps, eta = 3, 0.5, 0.5, 0.05
    rng = np.random.default_rng(0)
    w = rng.standard_normal(2 * d)
    sp = SmoothedPolicy(linear_discrete(w, 0.0, d), SmoothingConfig(sigma=sigma), seed=0)
    states, certs = [], []
    for _ in range(30):
        x = rng.standard_normal(d)
        # move x along the normal so that w . [x, x] / ||w|| = +-1.02 eps exactly (the exact radius of the halfspace)
        normal = w[:d] + w[d:]
        margin = (w @ np.r_[x, x]) / np.linalg.norm(w)
        target = np.sign(rng.standard_normal()) * 1.02 * eps
        x = x + (target - margin) * np.linalg.norm(w) / (normal @ normal) * normal
        assert abs(w @ np.r_[x, x]) / np.linalg.norm(w) == pytest.approx(1.02 * eps)
        states.append(make_obs(x))
        certs.append(certify_discrete_l2(sp, states[-1], n0=100, n=10_000, alpha=0.001))
    level = attack_test_level(eta, len(states))
    flags = np.array([attack_state(sp, s, c, eps, _attack_args(), level) for s, c in zip(states, certs)])
    certified = np.array([c.certifies(eps) for c in certs])
    est = population_estimate(certified, eps, eta, per_state_alpha=0.001, attacked=flags)
    assert not flags.any()
    assert est.attack_robust_upper == 1.0
    assert "confidence 0.95" in est.attack_bracket


def test_a_real_break_is_still_confirmed():
    """States at 0.5 eps are not robust at eps; PGD moves them across and the test confirms it."""
    d, sigma, eps = 3, 0.25, 0.5
    w = np.r_[np.ones(d), np.zeros(d)]
    sp = SmoothedPolicy(linear_discrete(w, 0.0, d), SmoothingConfig(sigma=sigma), seed=1)
    flags = []
    for i in range(5):
        x = np.full(d, 0.5 * eps / np.sqrt(d)) * (1 if i % 2 else -1)  # margin 0.5 eps
        obs = make_obs(x)
        cert = certify_discrete_l2(sp, obs, n0=100, n=10_000, alpha=0.001)
        flags.append(attack_state(sp, obs, cert, eps, _attack_args(), attack_test_level(0.05, 5)))
    assert all(flags)


def _simulated_bracket_failures(trials, n_states, p_robust, eta, seed, confirmed=True):
    """Coverage of the bracket with a known truth: each sampled state is robust with probability ``p_robust``.
    Robust states: the attack drives the top vote of 2 actions to 0.505 (just robust); broken ones: to 0.45.
    Clean vote 0.85. Counts are drawn exactly (multinomial), ``n = 2000`` per point, as in the CLI."""
    rng = np.random.default_rng(seed)
    n = 2000
    level = attack_test_level(eta, n_states)
    failures = 0
    for _ in range(trials):
        robust = rng.random(n_states) < p_robust
        flags = np.zeros(n_states, dtype=bool)
        for i in range(n_states):
            clean_a = rng.binomial(n, 0.85)
            moved_a = rng.binomial(n, 0.505 if robust[i] else 0.45)
            if confirmed:
                flags[i] = discrete_break_from_counts([clean_a, n - clean_a], [moved_a, n - moved_a], 0, level)
            else:  # the old rule: one majority vote at the attack point
                flags[i] = moved_a < n - moved_a
        est = population_estimate(np.zeros(n_states, dtype=bool), 0.1, eta, attacked=flags)
        failures += est.attack_robust_upper < p_robust
    return failures / trials


def test_bracket_coverage_simulation_small():
    """P(U < true robust fraction) <= eta (+ Monte Carlo slack); the old single-vote rule fails far more often."""
    eta, trials = 0.05, 150
    rate = _simulated_bracket_failures(trials, 30, 0.8, eta, seed=0)
    assert rate <= eta + 2 * np.sqrt(eta * (1 - eta) / trials)
    old_rate = _simulated_bracket_failures(40, 30, 0.8, eta, seed=0, confirmed=False)
    assert old_rate > 0.5


@pytest.mark.slow
def test_bracket_coverage_simulation_large():
    eta, trials = 0.05, 1500
    for p in (0.5, 0.8, 0.95):
        rate = _simulated_bracket_failures(trials, 30, p, eta, seed=1)
        assert rate <= eta + 2 * np.sqrt(eta * (1 - eta) / trials)


def test_confirmation_needs_the_clean_decision_too():
    """A robust state whose selected action was wrong (true decision 1 everywhere) is not called broken."""
    assert not discrete_break_from_counts([900, 1100], [500, 1500], reference=0, level=0.01)
    assert discrete_break_from_counts([1800, 200], [500, 1500], reference=0, level=0.01)
    assert not discrete_break_from_counts([1800, 200], [990, 1010], reference=0, level=0.01)


def test_continuous_break_needs_confident_bounds():
    """Continuous actions: a break is claimed only when the bounds on the attacked mean action leave the band."""
    import torch
    from _robustness_helpers import dict_space
    from gymnasium import spaces

    from reengage.robustness import PolicyAdapter
    from reengage.robustness.attacks import confirm_continuous_break

    def forward(o):
        return torch.clamp(o["observation"][:, :1] * 2.0, -1.0, 1.0)

    sp = SmoothedPolicy(
        PolicyAdapter(forward, dict_space(2), spaces.Box(-1.0, 1.0, (1,))), SmoothingConfig(sigma=0.1), seed=0
    )
    obs = make_obs(np.zeros(2))
    flat = sp.flat_state(sp.as_dict(obs))
    center = np.zeros(1)  # the exact smoothed action at x (odd policy, symmetric noise)
    far = flat.copy()
    far[0] += 0.3  # mean action about 0.55 > 0.25
    near = flat.copy()
    near[0] += 0.12  # mean action about 0.24, inside the band: not a break, even if estimates scatter
    assert confirm_continuous_break(sp, obs, far, center, 0.25, n=2000, level=0.01)
    assert not any(confirm_continuous_break(sp, obs, near, center, 0.25, n=2000, level=0.01) for _ in range(10))


def test_randomized_ablation_break_found_by_search_is_confirmed():
    import torch
    from _robustness_helpers import dict_space
    from gymnasium import spaces

    from reengage.robustness import PolicyAdapter, certify_l0_randomized

    def forward(o):  # action 1 iff the first feature is 1 (an ablated 0.5 ties, and ties go to action 0)
        s = o["observation"][:, 0] - 0.5
        return torch.stack([-s, s], -1)

    sp = SmoothedPolicy(
        PolicyAdapter(forward, dict_space(2, binary=True), spaces.Discrete(2)),
        SmoothingConfig(kind="ablation", retain=3),
        seed=0,
    )
    obs = make_obs(np.array([1.0, 0.0]))
    cert = certify_l0_randomized(sp, obs, n0=100, n=2000, alpha=0.001)
    assert cert.details["selected"] == 1
    assert attack_state(sp, obs, cert, 1, _attack_args(), level=0.01) is True
