"""Bit-flipping environments: dynamics, rewards, checkers, seeding and HER relabelling."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401  (registers the ids)
from gymnasium.utils.env_checker import check_env as gym_check_env
from reengage.envs import BitFlippingContinuousEnv, BitFlippingEnv, BitFlippingFixedGoalEnv
from stable_baselines3 import HerReplayBuffer
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv

IDS = [
    "reengage/BitFlipping-v0",
    "reengage/BitFlipping20-v0",
    "reengage/BitFlipping40-v0",
    "reengage/BitFlippingFixed-v0",
    "reengage/BitFlippingContinuous-v0",
]


@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass(env_id):
    env = gym.make(env_id).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning counts as a failure
        warnings.filterwarnings("ignore", message=".*GoalEnv.*")  # SB3's notice that it saw compute_reward
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=True)


def test_registered_sizes_and_spaces():
    assert gym.make("reengage/BitFlipping20-v0").unwrapped.n_bits == 20
    assert gym.make("reengage/BitFlipping40-v0").unwrapped.n_bits == 40
    env = gym.make("reengage/BitFlipping-v0", n_bits=7).unwrapped
    assert env.action_space == gym.spaces.Discrete(7)
    for key in ("observation", "achieved_goal", "desired_goal"):
        assert env.observation_space[key] == gym.spaces.MultiBinary(7)
    continuous = gym.make("reengage/BitFlippingContinuous-v0", n_bits=5).unwrapped
    assert continuous.action_space.shape == (5,)


def test_discrete_action_flips_exactly_one_bit():
    env = BitFlippingEnv(n_bits=6)
    obs, _ = env.reset(seed=3)
    for action in [0, 5, 2, 2]:
        before = obs["achieved_goal"].copy()
        obs, _, _, _, _ = env.step(action)
        changed = np.flatnonzero(before != obs["achieved_goal"])
        assert changed.tolist() == [action]
        np.testing.assert_array_equal(obs["observation"], obs["achieved_goal"])


def test_continuous_action_flips_positive_components():
    env = BitFlippingContinuousEnv(n_bits=5)
    obs, _ = env.reset(seed=0)
    before = obs["achieved_goal"].copy()
    obs, _, _, _, _ = env.step(np.array([0.3, -0.2, 0.0, 1.0, -1.0], dtype=np.float32))
    assert np.flatnonzero(before != obs["achieved_goal"]).tolist() == [0, 3]


def test_goals_random_or_fixed():
    random_goals = {tuple(BitFlippingEnv(n_bits=8).reset(seed=s)[0]["desired_goal"]) for s in range(10)}
    assert len(random_goals) > 5
    fixed = BitFlippingFixedGoalEnv(n_bits=8)
    for s in range(5):
        np.testing.assert_array_equal(fixed.reset(seed=s)[0]["desired_goal"], np.ones(8, dtype=np.int8))


def test_reward_success_and_episode_end():
    env = BitFlippingEnv(n_bits=4)
    obs, info = env.reset(seed=1)
    while np.array_equal(obs["achieved_goal"], obs["desired_goal"]):
        obs, info = env.reset()
    wrong = np.flatnonzero(obs["achieved_goal"] != obs["desired_goal"])
    rewards, terminated_flags = [], []
    for i, bit in enumerate(wrong):
        obs, reward, terminated, truncated, info = env.step(int(bit))
        rewards.append(reward)
        terminated_flags.append(terminated)
        assert truncated == (i + 1 >= 4)
    assert rewards[-1] == 0.0 and all(r == -1.0 for r in rewards[:-1])
    assert info["is_success"] == 1.0 and info["at_goal"] == 1.0
    assert not any(terminated_flags)  # success does not end the episode by default
    if env._steps < 4:
        # leaving the goal: reward -1 again, success stays (reached at some step of the episode)
        obs, reward, terminated, truncated, info = env.step(0)
        assert reward == -1.0 and info["is_success"] == 1.0 and info["at_goal"] == 0.0 and not terminated


def test_truncates_at_horizon_without_termination():
    env = BitFlippingEnv(n_bits=5)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


def test_terminate_on_success_option():
    env = BitFlippingFixedGoalEnv(n_bits=3, terminate_on_success=True)
    obs, _ = env.reset(seed=2)
    while np.array_equal(obs["achieved_goal"], obs["desired_goal"]):
        obs, _ = env.reset()
    for bit in np.flatnonzero(obs["achieved_goal"] == 0):
        obs, reward, terminated, truncated, _ = env.step(int(bit))
    assert reward == 0.0 and terminated and not truncated


def test_compute_reward_vectorised():
    env = BitFlippingEnv(n_bits=3)
    achieved = np.array([[0, 1, 1], [1, 1, 1], [0, 0, 0]], dtype=np.int8)
    desired = np.array([[0, 1, 1], [1, 0, 1], [1, 0, 0]], dtype=np.int8)
    np.testing.assert_array_equal(env.compute_reward(achieved, desired, None), [0.0, -1.0, -1.0])
    batch = np.stack([achieved, desired])  # (2, 3, 3)
    assert env.compute_reward(batch, batch, None).shape == (2, 3)
    assert env.compute_reward(achieved, desired, None).dtype == np.float32
    with pytest.raises(ValueError, match="3-bit"):
        env.compute_reward(np.zeros((2, 4)), np.zeros((2, 4)), None)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"n_bits": 0}, "n_bits"), ({"n_bits": 2.5}, "n_bits"), ({"n_bits": 4, "horizon": 0}, "horizon")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BitFlippingEnv(**kwargs)


def test_bad_action():
    env = BitFlippingEnv(n_bits=4)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        env.step(4)


@pytest.mark.parametrize("env_cls", [BitFlippingEnv, BitFlippingFixedGoalEnv, BitFlippingContinuousEnv])
def test_seeded_runs_repeat(env_cls):
    def rollout(seed):
        env = env_cls(n_bits=6)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        trace = [np.concatenate([obs["achieved_goal"], obs["desired_goal"]])]
        for _ in range(12):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace.append(np.concatenate([obs["achieved_goal"], obs["desired_goal"], [reward]]))
            if truncated:
                obs, _ = env.reset()
        return np.concatenate(trace)

    np.testing.assert_array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))


def _filled_her_buffer(env_kwargs, episodes=40, seed=0, strategy="future"):
    vec_env = DummyVecEnv([lambda: BitFlippingEnv(**env_kwargs)])
    vec_env.seed(seed)
    buffer = HerReplayBuffer(
        10_000,
        vec_env.observation_space,
        vec_env.action_space,
        env=vec_env,
        n_sampled_goal=4,
        goal_selection_strategy=strategy,
    )
    rng = np.random.default_rng(seed)
    obs = vec_env.reset()
    done_episodes = 0
    while done_episodes < episodes:
        action = rng.integers(0, env_kwargs["n_bits"], size=1)
        next_obs, reward, done, infos = vec_env.step(action)
        real_next = {k: v.copy() for k, v in next_obs.items()}
        if done[0]:
            real_next = {k: infos[0]["terminal_observation"][k][None] for k in next_obs}
            done_episodes += 1
        buffer.add(obs, real_next, action[:, None], reward, done, infos)
        obs = next_obs
    return buffer, vec_env


def test_her_relabelling_matches_compute_reward_and_never_terminates():
    buffer, vec_env = _filled_her_buffer({"n_bits": 3})
    env = vec_env.envs[0].unwrapped
    batch = buffer.sample(2000)
    achieved = batch.next_observations["achieved_goal"].numpy()
    desired = batch.observations["desired_goal"].numpy()
    np.testing.assert_array_equal(batch.next_observations["desired_goal"].numpy(), desired)
    expected = env.compute_reward(achieved, desired, None)
    np.testing.assert_array_equal(batch.rewards.numpy().ravel(), expected)
    # relabelling produced successes (a non-trivial check) and no transition is terminal
    assert 0.1 < (expected == 0).mean() < 0.9
    assert float(batch.dones.abs().sum()) == 0.0


def test_terminating_on_success_breaks_relabelled_done_flags():
    """Why the default does not terminate: SB3 keeps stored done flags for relabelled goals (stable-baselines3 GitHub issue #627)."""
    buffer, _ = _filled_her_buffer({"n_bits": 2, "terminate_on_success": True}, episodes=60)
    batch = buffer.sample(4000)
    dones, rewards = batch.dones.numpy().ravel(), batch.rewards.numpy().ravel()
    # relabelled successes before the end of the episode stay non-terminal although success terminates
    assert np.any((dones == 0) & (rewards == 0))
    buffer, _ = _filled_her_buffer({"n_bits": 2, "terminate_on_success": True}, episodes=60, strategy="episode")
    batch = buffer.sample(4000)
    dones, rewards = batch.dones.numpy().ravel(), batch.rewards.numpy().ravel()
    # and with the 'episode' strategy a final transition keeps done = 1 for a goal it did not reach
    assert np.any((dones == 1) & (rewards == -1))
