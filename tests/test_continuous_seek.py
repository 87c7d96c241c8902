"""ContinuousSeek: spaces, checkers, dynamics, rewards, HER consistency and seeding."""

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
import torch
from gymnasium.utils.env_checker import check_env
from reengage.envs import ContinuousSeekEnv
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv


@pytest.mark.parametrize(
    "env_id, d",
    [
        ("reengage/ContinuousSeek-v0", 5),
        ("reengage/ContinuousSeek5-v0", 5),
        ("reengage/ContinuousSeek10-v0", 10),
        ("reengage/ContinuousSeek20-v0", 20),
    ],
)
def test_registered_ids_and_checkers(env_id, d):
    env = gym.make(env_id)
    assert env.unwrapped.d == d
    assert env.observation_space["desired_goal"].shape == (d,)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(env.unwrapped, warn=True)
    assert gym.make("reengage/ContinuousSeek-v0", d=7).unwrapped.d == 7


def test_dynamics_clip_and_reward():
    env = ContinuousSeekEnv(d=2, box=5.0, tolerance=0.1, horizon=10)
    obs, _ = env.reset(seed=1)
    assert np.array_equal(obs["observation"], np.zeros(2)) and np.array_equal(obs["achieved_goal"], obs["observation"])
    assert np.all(np.abs(obs["desired_goal"]) <= 5.0)
    for _ in range(6):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, -3.0]))  # actions clipped to [-1, 1]
    assert np.allclose(obs["observation"], [5.0, -5.0])  # states clipped to the box
    env._goal = np.array([5.05, -4.95], dtype=np.float32)
    obs, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert reward == 0.0 and info["is_success"] == 1.0 and not terminated
    env._goal = np.array([4.85, -5.0], dtype=np.float32)
    obs, reward, terminated, truncated, info = env.step(np.zeros(2))
    assert reward == -1.0 and info["is_success"] == 0.0 and info["ever_reached"] == 1.0


def test_episode_ends_by_time_out_only():
    env = ContinuousSeekEnv(d=3, horizon=4)
    env.reset(seed=0)
    flags = [env.step(np.zeros(3))[2:4] for _ in range(4)]
    assert flags == [(False, False), (False, False), (False, False), (False, True)]


def test_compute_reward_is_vectorised_and_matches_step():
    env = ContinuousSeekEnv(d=4)
    rng = np.random.default_rng(0)
    achieved = rng.uniform(-5, 5, size=(7, 3, 4))
    desired = achieved + rng.uniform(-0.12, 0.12, size=(7, 3, 4))
    rewards = env.compute_reward(achieved, desired, None)
    assert rewards.shape == (7, 3)
    loop = np.array([[env.compute_reward(achieved[i, j], desired[i, j], None) for j in range(3)] for i in range(7)])
    assert np.array_equal(rewards, loop)
    assert set(np.unique(rewards)) <= {-1.0, 0.0} and len(np.unique(rewards)) == 2


def test_dense_reward_torch_form_matches_numpy_and_is_differentiable():
    env = ContinuousSeekEnv(d=3, reward_type="dense")
    rng = np.random.default_rng(2)
    achieved, desired = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    goal = torch.tensor(desired, requires_grad=True)
    reward = env.differentiable_reward(torch.tensor(achieved), goal)
    assert np.allclose(reward.detach().numpy()[:, 0], env.compute_reward(achieved, desired, None), atol=1e-6)
    (grad,) = torch.autograd.grad(reward.sum(), goal)
    expected = (achieved - desired) / np.linalg.norm(achieved - desired, axis=1, keepdims=True)
    assert np.allclose(grad.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="dense"):
        ContinuousSeekEnv(d=3).differentiable_reward(torch.zeros(1, 3), torch.zeros(1, 3))


def test_her_relabelled_rewards_are_compute_reward():
    venv = DummyVecEnv([lambda: gym.make("reengage/ContinuousSeek5-v0")])
    buffer = HerReplayBuffer(1000, venv.observation_space, venv.action_space, env=venv, n_sampled_goal=4)
    obs = venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = rng.uniform(-1, 1, size=(1, 5)).astype(np.float32)
        next_obs, reward, done, infos = venv.step(action)
        real_next = {k: v.copy() for k, v in next_obs.items()}
        if done[0]:
            real_next = {k: np.expand_dims(v, 0) for k, v in infos[0]["terminal_observation"].items()}
        buffer.add(obs, real_next, action, reward, done, infos)
        obs = next_obs
    batch = buffer.sample(200)
    expected = venv.envs[0].unwrapped.compute_reward(
        batch.next_observations["achieved_goal"].numpy(), batch.observations["desired_goal"].numpy(), None
    )
    assert np.array_equal(batch.rewards.numpy()[:, 0], expected)
    assert float(batch.dones.sum()) == 0.0  # time-outs are not terminals
    assert (expected == 0.0).any() and (expected == -1.0).any()


def test_same_seed_same_episodes():
    def rollout(seed):
        env = gym.make("reengage/ContinuousSeek10-v0")
        obs, _ = env.reset(seed=seed)
        goals = [obs["desired_goal"]]
        for _episode in range(3):
            obs, _ = env.reset()
            goals.append(obs["desired_goal"])
        return np.stack(goals)

    assert np.array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"d": 0}, "d must"),
        ({"box": -1.0}, "box"),
        ({"tolerance": 0}, "tolerance"),
        ({"horizon": 0}, "horizon"),
        ({"reward_type": "shaped"}, "sparse"),
    ],
)
def test_bad_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ContinuousSeekEnv(**kwargs)
