"""The baselines' DDPG + HER recipe options: action L2 penalty, target-value clipping, random actions."""

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from reengage.agents import ReenGAGEDDPG
from reengage.agents.compose import extended_agent_class
from stable_baselines3 import HerReplayBuffer

RecipeDDPG = extended_agent_class(ReenGAGEDDPG, baselines_recipe=True)


def _agent(cls=RecipeDDPG, learn=120, **kwargs):
    model = cls(
        "MultiInputPolicy",
        gym.make("reengage/ContinuousSeek5-v0"),
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        policy_kwargs=dict(net_arch=[32, 32], share_features_extractor=False),
        learning_starts=50,
        batch_size=32,
        buffer_size=2000,
        seed=0,
        gamma=0.9,
        **kwargs,
    )
    if learn:
        model.learn(learn)
    return model


def _actor_gradients(model, observations, explicit_l2=0.0):
    """Gradients of SB3's actor loss (-Q(s, pi(s))), plus an explicitly written L2 penalty if asked."""
    model.policy.set_training_mode(True)
    model.actor.optimizer.zero_grad()
    actions = model.actor(observations)
    loss = -model.critic.q1_forward(observations, actions).mean() + explicit_l2 * actions.pow(2).mean()
    loss.backward()
    return [p.grad.clone() for p in model.actor.parameters()]


def test_action_l2_hook_gives_the_gradient_of_the_penalised_actor_loss():
    penalised = _agent(action_l2=1.0, reengage_alpha=0.0)
    plain = _agent(RecipeDDPG, learn=0, action_l2=0.0, reengage_alpha=0.0)
    plain.policy.load_state_dict(penalised.policy.state_dict())
    batch = penalised.replay_buffer.sample(64)
    with_hook = _actor_gradients(penalised, batch.observations)
    explicit = _actor_gradients(plain, batch.observations, explicit_l2=1.0)
    without = _actor_gradients(plain, batch.observations)
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(with_hook, explicit))
    assert not all(torch.allclose(a, b) for a, b in zip(with_hook, without))
    # rollouts and evaluation (no graph) are untouched
    obs, _ = gym.make("reengage/ContinuousSeek5-v0").reset(seed=1)
    assert np.array_equal(penalised.predict(obs, deterministic=True)[0], plain.predict(obs, deterministic=True)[0])


def test_target_value_clip_bounds_the_target_and_its_goal_gradient():
    model = _agent(target_value_clip=True, reengage_alpha=0.2)
    low, high = model.target_value_range()
    assert (low, high) == pytest.approx((-1.0 / (1 - 0.9), 0.0))
    batch = model.replay_buffer.sample(32)
    final_layer = [m for m in model.critic_target.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        final_layer.bias.fill_(50.0)  # every target value far above 0: all clipped to 0
    next_actions = model.actor_target(batch.next_observations)
    values = model.critic_target(batch.next_observations, next_actions)[0]
    assert torch.all(values == high)
    assert torch.all(model.target_goal_gradient(batch) == 0)  # clipped: no goal gradient through the target
    with torch.no_grad():
        final_layer.bias.fill_(-1e4)
    assert torch.all(model.critic_target(batch.next_observations, next_actions)[0] == low)
    # the online critic is not clipped
    assert torch.any(model.critic(batch.observations, batch.actions)[0] != 0)


def test_target_value_clip_leaves_values_inside_the_range_alone():
    clipped = _agent(target_value_clip=True, reengage_alpha=0.0)
    batch = clipped.replay_buffer.sample(32)
    next_actions = clipped.actor_target(batch.next_observations)
    values = clipped.critic_target(batch.next_observations, next_actions)[0]
    raw = clipped.critic_target.q_networks[0](
        torch.cat(
            [
                clipped.critic_target.extract_features(
                    batch.next_observations, clipped.critic_target.features_extractor
                ),
                next_actions,
            ],
            dim=1,
        )
    )
    assert torch.equal(values, raw.clamp(*clipped.target_value_range()))


def test_random_action_probability_replaces_that_fraction_of_actions():
    model = _agent(random_action_prob=0.5, reengage_alpha=0.0, action_noise=None)
    np.random.seed(0)
    replaced = 0
    for _ in range(400):
        action, buffer_action = model._sample_action(learning_starts=0)
        greedy, _ = model.predict(model._last_obs, deterministic=True)
        replaced += not np.allclose(action, greedy)
        assert np.all(np.abs(buffer_action) <= 1.0)
    assert 0.42 < replaced / 400 < 0.58
    never = _agent(random_action_prob=0.0, reengage_alpha=0.0, action_noise=None)
    action, _ = never._sample_action(learning_starts=0)
    assert np.allclose(action, never.predict(never._last_obs, deterministic=True)[0])


def test_bad_recipe_values_are_refused():
    with pytest.raises(ValueError, match="action_l2"):
        _agent(learn=0, action_l2=-1.0)
    with pytest.raises(ValueError, match="random_action_prob"):
        _agent(learn=0, random_action_prob=1.5)
