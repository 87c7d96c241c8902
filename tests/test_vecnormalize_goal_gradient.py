"""GoalGradientMixin trained through SB3's VecNormalize: raw-goal units, G.4 weights, the raw-reward mask."""

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from reengage.agents import ReenGAGEDDPG
from reengage.agents.vecnormalize_goal import raw_sparse_rewards
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from reengage import losses


def _agent_on_vecnormalize(dim_weights="none", norm_reward=True, clip_obs=10.0):
    venv = VecNormalize(
        DummyVecEnv([lambda: gym.make("reengage/ContinuousSeek5-v0")]),
        norm_obs=True,
        norm_reward=norm_reward,
        clip_obs=clip_obs,
        gamma=0.95,
    )
    model = ReenGAGEDDPG(
        "MultiInputPolicy",
        venv,
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        policy_kwargs=dict(net_arch=[32, 32], share_features_extractor=False),
        learning_starts=50,
        batch_size=64,
        buffer_size=2000,
        seed=0,
        reengage_alpha=0.2,
        c_low=-1.0,
        reengage_dim_weights=dim_weights,
    )
    model.learn(200)
    return model, venv


def _paired_batches(model, venv, size=256):
    """The same transitions sampled normalised (as train() sees them) and raw (same random draws)."""
    np.random.seed(123)
    normalised = model.replay_buffer.sample(size, env=venv)
    np.random.seed(123)
    raw = model.replay_buffer.sample(size, env=None)
    return normalised, raw


def _loss_in_raw_units(model, venv, normalised, raw, weights_on_raw=None):
    """Reference: gradients wrt the raw goal = gradients wrt the normalised goal / sigma, 0 where clipped."""
    sigma = torch.as_tensor(np.sqrt(venv.obs_rms["desired_goal"].var + venv.epsilon), dtype=torch.float32)
    model._reengage_generator.manual_seed(7)
    target = model.target_goal_gradient(normalised)
    q_grad = model.critic_goal_gradients(normalised.observations, normalised.actions)[0]
    keep = (normalised.observations["desired_goal"].abs() < venv.clip_obs).float()
    keep_next = (normalised.next_observations["desired_goal"].abs() < venv.clip_obs).float()
    return losses.sparse_goal_gradient_loss(
        q_grad / sigma * keep,
        target / sigma * keep_next,
        raw.rewards,
        raw.dones,
        model.gamma,
        model.c_low,
        weights_on_raw,
    )


def test_sparse_term_reads_raw_rewards_under_reward_normalisation():
    model, venv = _agent_on_vecnormalize()
    normalised, raw = _paired_batches(model, venv)
    assert torch.equal(raw.actions, normalised.actions)
    # the sampled rewards are scaled: none equals c_low any more (the old silent failure)
    assert not torch.any(normalised.rewards == -1.0)
    recovered = raw_sparse_rewards(venv, normalised.rewards, -1.0)
    assert torch.equal(recovered == -1.0, raw.rewards == -1.0)
    assert torch.allclose(recovered, raw.rewards, atol=1e-5)

    model._reengage_generator.manual_seed(7)
    loss, masked = model.goal_gradient_loss(normalised)
    expected_masked = 1.0 - float((raw.rewards == -1.0).float().mean())
    assert 0.0 < masked < 1.0 and masked == pytest.approx(expected_masked)
    assert loss.item() > 0
    assert loss.item() == pytest.approx(_loss_in_raw_units(model, venv, normalised, raw).item(), rel=1e-5)


def test_g4_weights_are_sigma_squared_on_raw_errors_under_vecnormalize():
    model, venv = _agent_on_vecnormalize(dim_weights="normalised")
    normalised, raw = _paired_batches(model, venv)
    sigma = torch.as_tensor(np.sqrt(venv.obs_rms["desired_goal"].var + venv.epsilon), dtype=torch.float32)
    model._reengage_generator.manual_seed(7)
    loss, _ = model.goal_gradient_loss(normalised)
    expected = _loss_in_raw_units(model, venv, normalised, raw, weights_on_raw=sigma**2)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # ... which is the unweighted error in normalised-goal units (sigma^2, not sigma^4)
    model._reengage_generator.manual_seed(7)
    target = model.target_goal_gradient(normalised)
    q_grad = model.critic_goal_gradients(normalised.observations, normalised.actions)[0]
    unweighted = losses.sparse_goal_gradient_loss(q_grad, target, raw.rewards, raw.dones, model.gamma, -1.0)
    assert loss.item() == pytest.approx(unweighted.item(), rel=1e-5)


def test_clipped_goal_entries_carry_no_gradient():
    # a tight clip so that some goal entries are clipped by VecNormalize
    model, venv = _agent_on_vecnormalize(clip_obs=0.5)
    normalised, raw = _paired_batches(model, venv)
    clipped = normalised.observations["desired_goal"].abs() >= venv.clip_obs
    assert clipped.any() and not clipped.all()
    model._reengage_generator.manual_seed(7)
    loss, _ = model.goal_gradient_loss(normalised)
    assert loss.item() == pytest.approx(_loss_in_raw_units(model, venv, normalised, raw).item(), rel=1e-5)


def test_raw_rewards_are_recovered_even_when_the_normaliser_clips_them():
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("reengage/ContinuousSeek5-v0")]), clip_reward=0.01)
    venv.ret_rms.var = np.array(4.0)
    sampled = torch.as_tensor(venv.normalize_reward(np.array([-1.0, 0.0, -1.0], dtype=np.float32)).astype(np.float32))
    assert sampled[0].item() == pytest.approx(-0.01)  # clipped: dividing back would give the wrong value
    assert torch.equal(raw_sparse_rewards(venv, sampled, -1.0), torch.tensor([-1.0, 0.0, -1.0]))
    assert raw_sparse_rewards(None, sampled, -1.0) is sampled
