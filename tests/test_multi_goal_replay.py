"""GoalSetReplayBuffer: goal sets stored once per episode, item rewards per transition, SB3-compatible."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
from reengage.agents import GoalSetReplayBuffer


def fill(buffer, env, episodes, seed=0):
    rng = np.random.default_rng(seed)
    stored = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done = False
        while not done:
            action = rng.uniform(-0.5, 0.5, size=env.action_space.shape).astype(np.float32)
            next_obs, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            info = {**info, "TimeLimit.truncated": truncated and not terminated}
            batch = {key: value[None] for key, value in obs.items()}
            next_batch = {key: value[None] for key, value in next_obs.items()}
            buffer.add(batch, next_batch, action[None], np.array([reward]), np.array([done]), [info])
            stored.append((obs, next_obs, reward, info["item_rewards"]))
            obs = next_obs
    return stored


def test_goal_sets_are_stored_once_per_episode_and_samples_rebuild_them():
    env = gym.make("reengage/DriveSeek-v0")
    buffer = GoalSetReplayBuffer(1000, env.observation_space, env.action_space, device="cpu")
    stored = fill(buffer, env, episodes=5)
    assert buffer.goal_set_rows_in_use == 5 and buffer.pos == 200
    assert set(buffer.observations) == {"observation"}  # only the state per transition
    np.random.seed(0)
    samples = buffer.sample(64)
    index = {
        tuple(obs["observation"]) + tuple(next_obs["observation"]): (obs, item) for obs, next_obs, _, item in stored
    }
    for i in range(64):
        key = tuple(samples.observations["observation"][i].numpy()) + tuple(
            samples.next_observations["observation"][i].numpy()
        )
        obs, item = index[key]
        np.testing.assert_array_equal(samples.observations["goals"][i].numpy(), obs["goals"])
        np.testing.assert_array_equal(samples.next_observations["gates"][i].numpy(), obs["gates"])
        np.testing.assert_array_equal(samples.item_rewards[i].numpy(), item)
        assert samples.rewards[i, 0].item() == item.sum()
    assert samples.item_rewards.shape == (64, 200)
    assert samples.dones.sum() == 0  # time-outs are not terminal
    assert samples.discounts is None


def test_overwritten_goal_sets_are_recycled():
    env = gym.make("reengage/NoisySeek-v0")
    buffer = GoalSetReplayBuffer(100, env.observation_space, env.action_space, device="cpu", initial_goal_sets=2)
    fill(buffer, env, episodes=12)  # 480 transitions through 100 slots
    assert buffer.full
    # 100 transitions of 40-step episodes touch at most 4 sets, plus the one being written
    assert buffer.goal_set_rows_in_use <= 5
    assert len(buffer.set_refs) <= 8
    live = buffer.set_index[:, 0]
    assert buffer.set_refs[np.unique(live)].sum() == 100
    # every live transition still points at its own episode's goal set
    for row in np.unique(live):
        assert buffer.set_gates[row].sum() >= 1


def test_buffer_rejects_bad_input():
    env = gym.make("reengage/DriveSeek-v0")
    buffer = GoalSetReplayBuffer(10, env.observation_space, env.action_space, device="cpu")
    obs, _ = env.reset(seed=0)
    batch = {key: value[None] for key, value in obs.items()}
    with pytest.raises(ValueError, match="item_rewards"):
        buffer.add(batch, batch, np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{}])
    other = {**batch, "gates": np.zeros_like(batch["gates"])}
    with pytest.raises(ValueError, match="goal set changed"):
        buffer.add(batch, other, np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{"item_rewards": np.zeros(200)}])
    with pytest.raises(ValueError, match="goals"):
        GoalSetReplayBuffer(10, gym.spaces.Dict({"observation": gym.spaces.Box(0, 1, (2,))}), env.action_space)


def test_one_million_transitions_fit_in_about_a_gigabyte():
    env = gym.make("reengage/DriveSeek-v0")
    buffer = GoalSetReplayBuffer(
        1_000_000, env.observation_space, env.action_space, device="cpu", initial_goal_sets=32768
    )
    # arrays are allocated lazily; nbytes is what they occupy once written (25k episodes of 40 steps)
    assert buffer.nbytes() < 1.0e9
    per_transition_sets = 2 * 1_000_000 * (200 * 2 + 200) * 4  # obs + next_obs copies in a DictReplayBuffer
    assert per_transition_sets > 4.5 * buffer.nbytes()
