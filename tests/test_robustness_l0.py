"""l0 certificates on binary observations: exhaustive Hamming search inside the certified radius."""

import math

import numpy as np
import pytest
from _robustness_helpers import dict_space, make_obs, random_mlp
from gymnasium import spaces

from reengage.robustness import (
    PolicyAdapter,
    SmoothedPolicy,
    SmoothingConfig,
    attacks,
    certify_l0_deterministic,
    certify_l0_randomized,
)
from reengage.robustness.certificates import ablation_delta

N_BITS = 6  # 12 smoothed features (observation and achieved_goal)


def _policy(seed, kind, **kw):
    adapter = PolicyAdapter(random_mlp(3 * N_BITS, 4, seed=seed), dict_space(N_BITS, binary=True), spaces.Discrete(4))
    return SmoothedPolicy(adapter, SmoothingConfig(kind=kind, **kw), seed=seed)


def test_hamming_search_never_changes_deterministic_smoothed_action_within_radius():
    rng = np.random.default_rng(0)
    found_beyond = 0
    radii = []
    for trial in range(10):
        sp = _policy(trial % 3, "deterministic_ablation", groups=6)
        obs = make_obs(rng.integers(0, 2, N_BITS), rng.integers(0, 2, N_BITS))
        cert = certify_l0_deterministic(sp, obs)
        radii.append(cert.radius)
        assert cert.action == sp.smoothed_action(obs)
        if cert.radius > 0:
            found, flipped = attacks.hamming_search(sp, obs, min(cert.radius, 3))
            assert not found, f"flip of {cert.radius} features changed the certified action"
        if cert.radius <= 2:
            found, _ = attacks.hamming_search(sp, obs, cert.radius + 1)
            found_beyond += found
    assert max(radii) >= 2
    assert found_beyond >= 1  # the search does find changes beyond the radius


def test_deterministic_certificate_is_exact_for_an_any_bit_policy():
    """Base policy: action 1 iff some visible state bit is 1. At the all-zero state the 8 groups vote 0
    unanimously: radius floor(8 / 2) = 4, and 5 flips in 5 different groups change the action."""
    import torch

    def forward(o):
        visible_one = ((o["observation"] == 1).any(dim=-1) | (o["achieved_goal"] == 1).any(dim=-1)).float()
        return torch.stack([1 - visible_one, visible_one], -1)

    sp = SmoothedPolicy(
        PolicyAdapter(forward, dict_space(N_BITS, binary=True), spaces.Discrete(2)),
        SmoothingConfig(kind="deterministic_ablation", groups=8),
    )
    obs = make_obs(np.zeros(N_BITS), np.zeros(N_BITS))
    cert = certify_l0_deterministic(sp, obs)
    assert (cert.action, cert.radius) == (0, 4)
    assert not attacks.hamming_search(sp, obs, 4)[0]
    found, flipped = attacks.hamming_search(sp, obs, 5)
    assert found and int(flipped.sum()) == 5


def test_hamming_neighbours_count():
    flat = np.zeros(10)
    assert len(attacks.hamming_neighbours(flat, 2)) == 1 + 10 + math.comb(10, 2)
    with pytest.raises(ValueError, match="binary"):
        attacks.hamming_neighbours(np.array([0.5, 1.0]), 1)


def test_randomized_ablation_certificate_survives_hamming_search():
    """Within rho, every neighbour keeps p_A >= p_lower - Delta(d, k, rho') (> 1/2), up to Monte Carlo error."""
    rng = np.random.default_rng(1)
    retain = 2
    checked = 0
    for trial in range(4):
        sp = _policy(10 + trial, "ablation", retain=retain)
        obs = make_obs(rng.integers(0, 2, N_BITS), rng.integers(0, 2, N_BITS))
        cert = certify_l0_randomized(sp, obs, n0=100, n=3000, alpha=0.001)
        if cert.radius is None or cert.radius == 0:
            continue
        rho = min(cert.radius, 2)
        flat = sp.flat_state(sp.as_dict(obs))
        n = 1500
        for cand in attacks.hamming_neighbours(flat, rho)[1:]:
            dist = int(np.sum(cand != flat))
            moved = sp.with_state(sp.as_dict(obs), cand)
            p_hat = sp.counts(sp.sample(moved, n))[cert.action] / n
            bound = cert.details["p_lower"] - ablation_delta(sp.d, retain, dist)
            assert p_hat >= bound - 4 * np.sqrt(0.25 / n)
            assert bound > 0.5
        checked += 1
    assert checked >= 2


def test_ablation_config_refusals():
    with pytest.raises(ValueError, match="retain"):
        SmoothingConfig(kind="ablation")
    with pytest.raises(ValueError, match="groups"):
        SmoothingConfig(kind="deterministic_ablation", groups=0)
    with pytest.raises(ValueError, match="exceeds"):
        _policy(0, "deterministic_ablation", groups=40)
    with pytest.raises(ValueError, match="sigma"):
        SmoothingConfig(kind="ablation", retain=2, sigma=0.5)
