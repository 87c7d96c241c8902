"""The observation normaliser inside the policy: chain rule, G.4 weights, statistics, save and load."""

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from reengage.agents.compose import extended_agent_class
from reengage.agents.normalizer import (
    NormalizedCombinedExtractor,
    RunningNormalizer,
    goal_std,
    normalizer_policy_kwargs,
    normalizing_extractors,
)
from reengage.agents.td3 import ReenGAGEDDPG
from stable_baselines3 import HerReplayBuffer

from reengage import losses

NormalizedDDPG = extended_agent_class(ReenGAGEDDPG, normalize_observations=True)


def _fitted_normalizer(clip_obs=200.0, clip_normalized=5.0):
    normalizer = RunningNormalizer(4, clip_obs=clip_obs, clip_normalized=clip_normalized)
    rng = np.random.default_rng(0)
    # dimensions of very different scales: what the per-dimension chain rule must get right
    normalizer.update(rng.normal([1.0, -2.0, 0.0, 5.0], [0.1, 3.0, 1.0, 20.0], size=(500, 4)))
    return normalizer


def test_running_statistics_match_numpy_over_several_batches():
    normalizer = RunningNormalizer(3)
    rng = np.random.default_rng(1)
    batches = [rng.normal(2.0, [0.5, 1.0, 4.0], size=(n, 3)) for n in (1, 7, 100, 33)]
    for batch in batches:
        normalizer.update(batch)
    everything = np.concatenate(batches)
    assert normalizer.stat_count.item() == len(everything)
    np.testing.assert_allclose(normalizer.stat_mean.numpy(), everything.mean(0), rtol=1e-12)
    np.testing.assert_allclose(normalizer.stat_var.numpy(), everything.var(0), rtol=1e-10)
    # the std floor keeps a constant dimension from dividing by zero
    constant = RunningNormalizer(1, std_floor=0.01)
    constant.update(np.full((10, 1), 3.0))
    assert constant.std.item() == pytest.approx(0.01)


def test_chain_rule_gradient_wrt_raw_is_normalised_gradient_over_sigma_and_matches_finite_differences():
    normalizer = _fitted_normalizer()
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    raw = torch.tensor([[1.05, -1.0, 0.3, 10.0]], dtype=torch.float64, requires_grad=True)

    def value(x):
        return head(normalizer(x)).sum()

    (grad_raw,) = torch.autograd.grad(value(raw), raw)
    normalised = normalizer(raw.detach()).requires_grad_(True)
    (grad_normalised,) = torch.autograd.grad(head(normalised).sum(), normalised)
    assert torch.allclose(grad_raw, grad_normalised / normalizer.std.double(), rtol=1e-5)
    # central finite differences in each raw coordinate, step relative to that coordinate's scale
    steps = 1e-4 * normalizer.std.double()
    finite = torch.stack(
        [
            (
                value(raw.detach() + steps[i] * torch.eye(4, dtype=torch.float64)[i])
                - value(raw.detach() - steps[i] * torch.eye(4, dtype=torch.float64)[i])
            )
            / (2 * steps[i])
            for i in range(4)
        ]
    )
    assert torch.allclose(grad_raw[0], finite, rtol=1e-4, atol=1e-8)


def test_gradient_is_zero_where_either_clip_is_active():
    normalizer = _fitted_normalizer(clip_obs=200.0, clip_normalized=5.0)
    # dim 0: 10 std above the mean (normalised clip); dim 3: beyond the raw clip of 200; others inside
    raw = torch.tensor([[1.0 + 10 * 0.1, -2.0, 0.0, 250.0]], dtype=torch.float64, requires_grad=True)
    normalised = normalizer(raw)
    assert normalised[0, 0].item() == pytest.approx(5.0)
    (grad,) = torch.autograd.grad((normalised * torch.arange(1.0, 5.0, dtype=torch.float64)).sum(), raw)
    assert grad[0, 0].item() == 0.0 and grad[0, 3].item() == 0.0
    assert grad[0, 1].item() == pytest.approx(2.0 / normalizer.std[1].item(), rel=1e-5)
    assert grad[0, 2].item() == pytest.approx(3.0 / normalizer.std[2].item(), rel=1e-5)


def _normalized_agent(dim_weights="none", **kwargs):
    env = gym.make("reengage/ContinuousSeek5-v0")
    return NormalizedDDPG(
        "MultiInputPolicy",
        env,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        policy_kwargs=dict(net_arch=[32, 32], share_features_extractor=False, **normalizer_policy_kwargs()),
        learning_starts=50,
        batch_size=32,
        buffer_size=2000,
        seed=0,
        reengage_alpha=0.2,
        reengage_mode="sparse",
        c_low=-1.0,
        reengage_dim_weights=dim_weights,
        **kwargs,
    )


def test_statistics_come_from_collected_data_only_and_are_shared_by_every_network():
    model = _normalized_agent()
    extractors = normalizing_extractors(model.policy)
    assert len(extractors) == 4  # actor, critic and their targets each normalise their input
    model.learn(120)
    counts = {extractor.normalizer_for("desired_goal").stat_count.item() for extractor in extractors}
    # one row per step for 'observation'; two per step (achieved and desired) for the goal group
    assert counts == {240.0}
    assert extractors[0].normalizer_for("observation").stat_count.item() == 120.0
    means = [extractor.normalizer_for("desired_goal").stat_mean for extractor in extractors]
    assert all(torch.equal(means[0], mean) for mean in means)
    # evaluation (predict) and gradient steps leave them alone
    before = means[0].clone()
    obs, _ = model.env.envs[0].reset(seed=3)
    model.predict(obs, deterministic=True)
    model.train(gradient_steps=3, batch_size=16)
    assert torch.equal(before, extractors[0].normalizer_for("desired_goal").stat_mean)


def test_agent_goal_gradient_is_the_raw_goal_gradient():
    model = _normalized_agent()
    model.learn(150)
    batch = model.replay_buffer.sample(16)
    q_grad = model.critic_goal_gradients(batch.observations, batch.actions)[0]
    # finite differences of the critic in the RAW goal: the buffer holds raw goals
    obs, actions, step = batch.observations, batch.actions, 1e-3
    finite = []
    for i in range(q_grad.shape[1]):
        shift = torch.zeros_like(obs["desired_goal"])
        shift[:, i] = step
        plus = model.critic({**obs, "desired_goal": obs["desired_goal"] + shift}, actions)[0]
        minus = model.critic({**obs, "desired_goal": obs["desired_goal"] - shift}, actions)[0]
        finite.append(((plus - minus) / (2 * step)).squeeze(-1))
    finite = torch.stack(finite, dim=1)
    assert torch.allclose(q_grad, finite, rtol=2e-2, atol=2e-3)


def test_g4_weights_are_sigma_squared_on_raw_goal_errors():
    model = _normalized_agent(dim_weights="normalised")
    model.learn(150)
    sigma = goal_std(model.policy)
    assert torch.allclose(model._dim_weights(5), sigma**2)
    assert not torch.allclose(sigma, torch.ones_like(sigma))  # statistics were fitted, not the initial ones
    batch = model.replay_buffer.sample(32)
    torch.manual_seed(1)
    model._reengage_generator.manual_seed(0)
    weighted, _ = model.goal_gradient_loss(batch)
    # sigma_i^2 * (raw error)^2 == (error of the gradient in normalised-goal units)^2
    model._reengage_generator.manual_seed(0)
    q_raw = model.critic_goal_gradients(batch.observations, batch.actions)[0]
    target_raw = model.target_goal_gradient(batch)
    in_normalised_units = losses.sparse_goal_gradient_loss(
        q_raw * sigma, target_raw * sigma, batch.rewards, batch.dones, model.gamma, model.c_low
    )
    assert weighted.item() == pytest.approx(in_normalised_units.item(), rel=1e-5)
    assert weighted.item() > 0


def test_normaliser_state_survives_save_and_load(tmp_path):
    model = _normalized_agent()
    model.learn(120)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = NormalizedDDPG.load(tmp_path / "model.zip", env=gym.make("reengage/ContinuousSeek5-v0"))
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    for saved, restored in zip(normalizing_extractors(model.policy), normalizing_extractors(loaded.policy)):
        for key in ("observation", "desired_goal"):
            a, b = saved.normalizer_for(key), restored.normalizer_for(key)
            assert torch.equal(a.stat_count, b.stat_count) and a.stat_count.item() > 0
            assert torch.equal(a.stat_mean, b.stat_mean) and torch.equal(a.stat_var, b.stat_var)
    obs, _ = gym.make("reengage/ContinuousSeek5-v0").reset(seed=5)
    assert np.array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
    # the loaded agent keeps updating (the mixin and its hooks come back with the class)
    loaded.learn(20, reset_num_timesteps=False)
    assert normalizing_extractors(loaded.policy)[0].normalizer_for("observation").stat_count.item() == 140


def test_normalisation_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="Dict observation space"):
        NormalizedCombinedExtractor(gym.spaces.Box(-1, 1, (3,)))
    env = gym.make("reengage/ContinuousSeek5-v0")
    with pytest.raises(ValueError, match="normalizer_policy_kwargs"):
        NormalizedDDPG("MultiInputPolicy", env, policy_kwargs=dict(share_features_extractor=False))
    with pytest.raises(ValueError, match="positive"):
        RunningNormalizer(3, clip_obs=0.0)
    plain = ReenGAGEDDPG(
        "MultiInputPolicy",
        env,
        policy_kwargs=dict(share_features_extractor=False),
        reengage_dim_weights="normalised",
        learning_starts=10,
        batch_size=8,
        buffer_size=200,
    )
    with pytest.raises(ValueError, match="goal statistics"):
        plain._dim_weights(5)
