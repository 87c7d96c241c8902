"""Noise in the observation's dtype (defect 3), independent noise streams and the certified policy for population
sampling (defect 5)."""

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from _robustness_helpers import dict_space, linear_discrete, make_obs, random_mlp
from gymnasium import spaces

from reengage.robustness import PolicyAdapter, SmoothedPolicy, SmoothingConfig, certify_discrete_l2, sample_states
from reengage.robustness.certificates import cohen_from_batches


def _far_halfspace(threshold: float) -> PolicyAdapter:
    """Action 1 iff observation[0] > threshold, computed in the input's own precision."""
    space = spaces.Dict(
        {
            "observation": spaces.Box(-2e6, 2e6, (2,), dtype=np.float64),
            "achieved_goal": spaces.Box(-2e6, 2e6, (2,), dtype=np.float64),
            "desired_goal": spaces.Box(-2e6, 2e6, (2,), dtype=np.float64),
        }
    )

    def forward(o):
        s = o["observation"][:, 0] - threshold
        return torch.stack([torch.zeros_like(s), s], -1)

    return PolicyAdapter(forward, space, spaces.Discrete(2))


@pytest.mark.parametrize("offset,expected", [(0.003, 1), (-0.003, 0)])
def test_float64_observation_keeps_its_precision(offset, expected):
    """|x| = 1e6, sigma = 0.005: in float32 the point rounds to 1e6 (spacing 0.0625) and the noise vanishes, so
    the old code certified action 0 with a huge radius on both sides of the boundary. The exact smoothed
    decision is 1 iff x0 > 1e6, with radius |x0 - 1e6| = 0.003."""
    sp = SmoothedPolicy(_far_halfspace(1e6), SmoothingConfig(sigma=0.005, keys=("observation",)), seed=0)
    x = np.array([1e6 + offset, 5.0])
    obs = {"observation": x, "achieved_goal": x.copy(), "desired_goal": np.zeros(2)}
    cert = certify_discrete_l2(sp, obs, n0=100, n=10_000, alpha=0.001)
    assert cert.action == expected
    assert 0 < cert.radius <= 0.003
    assert sp.noise_dtype == np.float64


def test_float32_observation_noise_stays_float32():
    sp = SmoothedPolicy(linear_discrete(np.ones(4), 0.0, 2), SmoothingConfig(sigma=0.1), seed=0)
    assert sp.noise_dtype == np.float32


def test_noise_wrapper_keeps_float64():
    from reengage.robustness import GaussianObservationNoise

    class Float64Env(gym.Env):
        observation_space = spaces.Box(-1e7, 1e7, (2,), dtype=np.float64)
        action_space = spaces.Discrete(2)

        def reset(self, *, seed=None, options=None):
            return np.array([1e6 + 0.001, 0.0]), {}

    env = GaussianObservationNoise(Float64Env(), sigma=0.005, keys=("obs",), seed=0)
    obs, _ = env.reset()
    assert obs.dtype == np.float64 and env.observation_space.dtype == np.float64
    assert obs[0] != 1e6 + 0.001 and abs(obs[0] - 1e6) < 0.1


def _identity_sp(seed: int = 0) -> SmoothedPolicy:
    """Continuous 'policy' that returns its noisy first feature: the outputs ARE the noise draws."""
    adapter = PolicyAdapter(lambda o: o["observation"][:, :1], dict_space(2), spaces.Box(-50.0, 50.0, (1,)))
    return SmoothedPolicy(adapter, SmoothingConfig(sigma=1.0), seed=seed)


def test_selection_and_estimation_streams_are_independent_even_after_reseeding():
    sp = _identity_sp()
    obs = make_obs(np.zeros(2))
    sp.reseed(0)
    selection = sp.sample(obs, 500, stream="selection").outputs
    sp.reseed(0)  # the old guard let a reseeded generator replay the selection noise for estimation
    estimation = sp.sample(obs, 500, stream="estimation").outputs
    assert not np.allclose(selection, estimation)
    assert abs(np.corrcoef(selection[:, 0], estimation[:, 0])[0, 1]) < 0.15
    sp.reseed(0)
    assert np.array_equal(sp.sample(obs, 500, stream="selection").outputs, selection)  # same seed, same draws


def test_relabelled_or_external_batches_are_refused():
    sp = SmoothedPolicy(linear_discrete(np.ones(4), 0.0, 2), SmoothingConfig(sigma=0.5), seed=0)
    obs = make_obs(np.array([0.3, 0.1]))
    selection = sp.sample(obs, 100, stream="selection")
    copied = dataclasses.replace(selection, draw_id=10**9)  # a copy with a new id passed the old identity check
    with pytest.raises(ValueError, match="stream"):
        cohen_from_batches(sp, selection, copied, 0.01)
    external = sp.sample(obs, 100, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="stream"):
        cohen_from_batches(sp, selection, external, 0.01)
    good = cohen_from_batches(sp, selection, sp.sample(obs, 1000, stream="estimation"), 0.01)
    assert good.action == 1


def test_deterministic_ablation_population_uses_the_certified_vote():
    """States are sampled by the majority-vote policy that is certified, not by a random group per step."""
    net = random_mlp(12 + 6, 6, seed=0)
    adapter = PolicyAdapter(net, dict_space(6, binary=True), spaces.Discrete(6))
    sp = SmoothedPolicy(adapter, SmoothingConfig(kind="deterministic_ablation", groups=3), seed=0)
    env = gym.make("reengage/BitFlipping-v0", n_bits=6)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        assert sp.predict(obs)[0] == sp.smoothed_action(obs)
        obs = env.step(sp.predict(obs)[0])[0]

    class Vote:
        def predict(self, o, deterministic=True):
            return sp.smoothed_action(o), None

    states_a, _ = sample_states(sp, gym.make("reengage/BitFlipping-v0", n_bits=6), 8, seed=3)
    states_b, _ = sample_states(Vote(), gym.make("reengage/BitFlipping-v0", n_bits=6), 8, seed=3)
    for a, b in zip(states_a, states_b):
        assert all(np.array_equal(a[k], b[k]) for k in a)
