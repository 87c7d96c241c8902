"""Reference values from the thesis and the randomized-smoothing papers (docs/method.md), reproduced by the
robustness module."""

import numpy as np
import pytest
from gymnasium import spaces
from scipy.stats import norm

from reengage.robustness import PolicyAdapter, SmoothedPolicy, SmoothingConfig, certify_l0_deterministic
from reengage.robustness.certificates import ablation_delta, cohen_radius, deterministic_ablation_radius
from reengage.robustness.episode import smoothed_event_lower_bound
from reengage.robustness.stats import (
    clopper_pearson_lower,
    clopper_pearson_upper,
    dkw_epsilon,
    hoeffding_sample_size,
)


def test_clopper_pearson_reference_values():
    assert clopper_pearson_lower(10000, 10000, 0.05) == pytest.approx(0.999700, abs=5e-7)
    assert clopper_pearson_lower(9000, 10000, 0.05) == pytest.approx(0.89493, abs=5e-6)
    # mirror image and edge cases
    assert clopper_pearson_upper(1000, 10000, 0.05) == pytest.approx(1 - 0.89493, abs=5e-6)
    assert clopper_pearson_lower(0, 10, 0.05) == 0.0


def test_cohen_radius_reference():
    p = clopper_pearson_lower(99990, 100000, 0.001)
    assert cohen_radius(p, 0.25) == pytest.approx(0.8726, abs=5e-5)
    assert cohen_radius(0.5, 0.25) is None  # abstain


def test_ablation_delta_reference():
    assert ablation_delta(64, 4, 9) == pytest.approx(0.46322, abs=5e-6)
    assert ablation_delta(64, 4, 0) == 0.0
    assert ablation_delta(10, 4, 7) == 1.0  # fewer unchanged features than kept ones


def test_policy_smoothing_and_dkw_and_sample_sizes():
    assert float(smoothed_event_lower_bound(0.9, 1.0, 1.0)) == pytest.approx(0.61086, abs=5e-6)
    assert float(smoothed_event_lower_bound(0.9, 0.5, 0.5)) == pytest.approx(norm.cdf(norm.ppf(0.9) - 1), abs=1e-12)
    assert dkw_epsilon(10_000, 0.05) == pytest.approx(0.013581, abs=5e-7)
    assert hoeffding_sample_size(0.05, 0.05) == 738
    assert hoeffding_sample_size(0.01, 0.01) == 26_492


def test_deterministic_ablation_formula():
    v = np.zeros(4, dtype=int)
    v[0] = 10
    assert deterministic_ablation_radius(v) == (0, 5)
    v = np.zeros(4, dtype=int)
    v[3] = 10
    assert deterministic_ablation_radius(v) == (3, 4)
    # ties go to the lowest index: 5 vs 5 -> action 1 certified at radius 0
    assert deterministic_ablation_radius(np.array([0, 5, 5])) == (1, 0)


@pytest.mark.parametrize("action,expected", [(0, 5), (2, 4)])
def test_deterministic_ablation_40_bits_10_groups_unanimous(action, expected):
    import torch

    space = spaces.Dict({"observation": spaces.MultiBinary(40)})

    def forward(o):
        scores = torch.zeros(o["observation"].shape[0], 3)
        scores[:, action] = 1.0
        return scores

    sp = SmoothedPolicy(
        PolicyAdapter(forward, space, spaces.Discrete(3)),
        SmoothingConfig(kind="deterministic_ablation", groups=10, keys=("observation",)),
    )
    cert = certify_l0_deterministic(sp, {"observation": np.random.default_rng(0).integers(0, 2, 40)})
    assert cert.action == action and cert.radius == expected and cert.alpha == 0.0
    # each of the 40 features sits in exactly one group, 4 per group
    assert np.bincount(sp._groups).tolist() == [4] * 10
