"""FastHerReplayBuffer against stable-baselines3's HerReplayBuffer, filled with the same known episodes.

Every observation names its transition: ``observation = [env, episode, step]`` and the next
``achieved_goal = [env, episode, step + 1]``, while the stored desired goal is ``[-1, -1, -1]``. A sampled
row therefore says which transition it is, whether it was relabelled, and which step of its episode
gave the new goal; the two buffers' distributions of those are compared by chi-square tests.
"""

from __future__ import annotations

import pickle
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401  (registers the environments)
import torch
from gymnasium import spaces
from reengage.agents import FastHerReplayBuffer, ReenGAGEDDPG
from scipy.stats import chi2_contingency
from stable_baselines3 import DDPG, SAC, HerReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

NO_GOAL = -1.0
# Episode lengths and endings per env ("term": terminated, "time": time-out); the scripts cycle and the
# last episode of each env is left unfinished. Storage of 40 slots wraps and overwrites old episodes.
LENGTHS = ([3, 5, 2, 6, 4], [4, 2, 5, 3, 6])
ENDINGS = (["term", "time", "time", "term", "time"], ["time", "term", "time", "time", "term"])
BUFFER_SIZE = 40
FILL_STEPS = 57


class LabelledGoalEnv(gym.Env):
    """A goal env whose only use is ``compute_reward``: 0 when the goals are equal, else -1 (vectorised)."""

    def __init__(self) -> None:
        box = spaces.Box(-10.0, 1000.0, shape=(3,), dtype=np.float32)
        self.observation_space = spaces.Dict({"observation": box, "achieved_goal": box, "desired_goal": box})
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def compute_reward(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any) -> np.ndarray:
        return np.all(achieved_goal == desired_goal, axis=-1).astype(np.float32) - 1.0

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # pragma: no cover - unused
        return self.observation_space.sample(), {}

    def step(self, action):  # pragma: no cover - unused
        raise NotImplementedError


def fill(buffer: HerReplayBuffer, n_envs: int, steps: int = FILL_STEPS) -> dict[tuple[int, int], int]:
    """Add the scripted episodes of ``n_envs`` envs; returns each finished episode's length by (env, episode)."""
    episode = [0] * n_envs
    step = [0] * n_envs
    finished: dict[tuple[int, int], int] = {}
    for _ in range(steps):
        obs = {key: np.zeros((n_envs, 3), dtype=np.float32) for key in ("observation", "achieved_goal", "desired_goal")}
        next_obs = {key: np.zeros((n_envs, 3), dtype=np.float32) for key in obs}
        done = np.zeros(n_envs, dtype=bool)
        infos = []
        for env in range(n_envs):
            script = episode[env] % len(LENGTHS[env])
            obs["observation"][env] = obs["achieved_goal"][env] = (env, episode[env], step[env])
            next_obs["observation"][env] = next_obs["achieved_goal"][env] = (env, episode[env], step[env] + 1)
            obs["desired_goal"][env] = next_obs["desired_goal"][env] = NO_GOAL
            info: dict[str, Any] = {}
            if step[env] + 1 == LENGTHS[env][script]:
                done[env] = True
                info["TimeLimit.truncated"] = ENDINGS[env][script] == "time"
                finished[(env, episode[env])] = step[env] + 1
                episode[env] += 1
                step[env] = 0
            else:
                step[env] += 1
            infos.append(info)
        action = np.zeros((n_envs, 2), dtype=np.float32)
        buffer.add(obs, next_obs, action, np.full(n_envs, -1.0, dtype=np.float32), done, infos)
    return finished


def make_buffer(cls: type, n_envs: int, strategy: str, k: int, **extra: Any) -> HerReplayBuffer:
    env = DummyVecEnv([LabelledGoalEnv for _ in range(n_envs)])
    return cls(
        BUFFER_SIZE,
        env.observation_space,
        env.action_space,
        env,
        device="cpu",
        n_envs=n_envs,
        n_sampled_goal=k,
        goal_selection_strategy=strategy,
        **extra,
    )


def sampled_rows(buffer: HerReplayBuffer, batches: int, batch_size: int = 256) -> np.ndarray:
    """Per sampled row: env, episode, step, relabelled (0/1), goal step (-1 if not relabelled), reward, done."""
    rows = []
    for _ in range(batches):
        batch = buffer.sample(batch_size)
        obs = batch.observations["observation"].numpy()
        goal = batch.observations["desired_goal"].numpy()
        assert np.array_equal(goal, batch.next_observations["desired_goal"].numpy())
        relabelled = goal[:, 0] != NO_GOAL
        goal_step = np.where(relabelled, goal[:, 2] - 1, -1)
        if relabelled.any():  # a new goal comes from the same env and episode
            assert np.array_equal(goal[relabelled, :2], obs[relabelled, :2])
        rows.append(
            np.column_stack([obs, relabelled, goal_step, batch.rewards.numpy()[:, 0], batch.dones.numpy()[:, 0]])
        )
    return np.concatenate(rows)


def two_sample_p_value(first: np.ndarray, second: np.ndarray) -> float:
    """Chi-square test that two samples of categorical rows come from the same distribution."""
    categories, inverse = np.unique(np.concatenate([first, second]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    table = np.stack(
        [
            np.bincount(inverse[: len(first)], minlength=len(categories)),
            np.bincount(inverse[len(first) :], minlength=len(categories)),
        ]
    )
    return float(chi2_contingency(table)[1])


@pytest.fixture(autouse=True)
def _seed_global_numpy():
    np.random.seed(12345)  # SB3's buffer draws from the global generator


def both_samples(n_envs: int, strategy: str, k: int, batches: int = 120) -> tuple[np.ndarray, np.ndarray, dict]:
    stock = make_buffer(HerReplayBuffer, n_envs, strategy, k)
    fast = make_buffer(FastHerReplayBuffer, n_envs, strategy, k, seed=7)
    finished = fill(stock, n_envs)
    assert fill(fast, n_envs) == finished
    return sampled_rows(stock, batches), sampled_rows(fast, batches), finished


@pytest.mark.parametrize("n_envs", [1, 2])
@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_relabelling_distribution_matches_sb3(n_envs, strategy):
    stock, fast, finished = both_samples(n_envs, strategy, k=4)
    # the same share relabelled, and in the same rows: int(her_ratio * batch) at the end of each batch
    per_batch = lambda rows: rows[:, 3].reshape(-1, 256)  # noqa: E731
    assert np.array_equal(per_batch(stock).sum(axis=1), per_batch(fast).sum(axis=1))
    assert np.array_equal(per_batch(fast)[0], np.r_[np.zeros(52), np.ones(204)])
    # only finished, not-overwritten episodes are sampled, and the fast buffer samples all of them
    stock_episodes = {tuple(row) for row in stock[:, :2].astype(int)}
    fast_episodes = {tuple(row) for row in fast[:, :2].astype(int)}
    assert fast_episodes == stock_episodes
    assert fast_episodes <= set(finished)
    # which transition is drawn, and which step gives the new goal
    assert two_sample_p_value(stock[:, :3], fast[:, :3]) > 1e-3
    relabelled = fast[:, 3] == 1
    assert two_sample_p_value(stock[stock[:, 3] == 1][:, :5], fast[relabelled][:, :5]) > 1e-3
    # the strategy's support: 'future' is inclusive of the current step
    lengths = np.array([finished[(int(env), int(ep))] for env, ep in fast[relabelled][:, :2]])
    step, goal_step = fast[relabelled][:, 2], fast[relabelled][:, 4]
    if strategy == "future":
        assert np.all((goal_step >= step) & (goal_step < lengths)) and np.any(goal_step == step)
    elif strategy == "final":
        assert np.array_equal(goal_step, lengths - 1)
    else:
        assert np.all((goal_step >= 0) & (goal_step < lengths)) and np.any(goal_step < step)
    # relabelled rewards come from compute_reward; real ones are the stored -1; dones are masked by time-outs
    assert np.array_equal(fast[relabelled][:, 5], np.where(goal_step == step, 0.0, -1.0))
    assert np.all(fast[~relabelled][:, 5] == -1.0)
    assert two_sample_p_value(stock[:, [0, 1, 2, 6]], fast[:, [0, 1, 2, 6]]) > 1e-3


@pytest.mark.parametrize("k", [0, 1, 7])
def test_her_ratio_follows_n_sampled_goal(k):
    stock, fast, _ = both_samples(1, "future", k, batches=20)
    expected = int((1 - 1 / (k + 1)) * 256)
    assert fast[:, 3].reshape(-1, 256).sum(axis=1).tolist() == [expected] * 20
    assert stock[:, 3].reshape(-1, 256).sum(axis=1).tolist() == [expected] * 20


class ExclusiveFutureBuffer(FastHerReplayBuffer):
    """A deliberately wrong 'future' (the current step excluded where possible), to show the test can fail."""

    def _goal_slots(self, batch_indices, env_indices):
        start = self.ep_start[batch_indices, env_indices]
        length = self.ep_length[batch_indices, env_indices]
        current = (batch_indices - start) % self.buffer_size
        steps = self.rng.integers(np.minimum(current + 1, length - 1), length)
        return (start + steps) % self.buffer_size


def test_distribution_test_detects_a_non_inclusive_future():
    stock = make_buffer(HerReplayBuffer, 1, "future", 4)
    wrong = make_buffer(ExclusiveFutureBuffer, 1, "future", 4, seed=7)
    fill(stock, 1)
    fill(wrong, 1)
    stock_rows, wrong_rows = sampled_rows(stock, 120), sampled_rows(wrong, 120)
    assert two_sample_p_value(stock_rows[stock_rows[:, 3] == 1][:, :5], wrong_rows[wrong_rows[:, 3] == 1][:, :5]) < 1e-6


def test_valid_interval_matches_the_episode_table():
    """The incremental interval of sampleable slots equals SB3's ``ep_length > 0`` at every step."""
    buffer = make_buffer(FastHerReplayBuffer, 2, "future", 4, seed=0)
    for steps in range(1, 2 * BUFFER_SIZE):  # 20 slots per env: wraps several times
        buffer.reset()
        fill(buffer, 2, steps)
        for env in range(2):
            valid = np.flatnonzero(buffer.ep_length[:, env] > 0)
            first = (buffer._current_ep_start[env] - buffer.n_valid[env]) % buffer.buffer_size
            interval = (first + np.arange(buffer.n_valid[env])) % buffer.buffer_size
            assert np.array_equal(np.sort(interval), valid), steps


def test_sampling_before_any_finished_episode_raises():
    buffer = make_buffer(FastHerReplayBuffer, 1, "future", 4, seed=0)
    fill(buffer, 1, steps=2)
    with pytest.raises(RuntimeError, match="end of the first episode"):
        buffer.sample(8)


@pytest.mark.parametrize("strategy, k, message", [("later", 4, "'later' is not one of"), ("future", -1, "got -1")])
def test_bad_arguments_are_refused_with_the_valid_choices(strategy, k, message):
    with pytest.raises(ValueError, match=message):
        make_buffer(FastHerReplayBuffer, 1, strategy, k)


def test_pickle_keeps_only_the_filled_part_and_resumes_the_same_samples():
    env = DummyVecEnv([LabelledGoalEnv])
    buffer = FastHerReplayBuffer(100_000, env.observation_space, env.action_space, env, device="cpu", seed=3)
    fill(buffer, 1)
    data = pickle.dumps(buffer)
    assert len(data) < 40_000  # 57 rows, not 100,000 (which would be about 9 MB)
    restored = pickle.loads(data)
    assert restored.env is None and restored.observations["observation"].shape == (100_000, 1, 3)
    restored.set_env(env)
    for _ in range(3):
        expected, got = buffer.sample(64), restored.sample(64)
        for key in expected.observations:
            assert torch.equal(expected.observations[key], got.observations[key])
            assert torch.equal(expected.next_observations[key], got.next_observations[key])
        assert torch.equal(expected.rewards, got.rewards) and torch.equal(expected.dones, got.dones)
    # both go on storing identically, past the end of the storage
    fill(buffer, 1)
    fill(restored, 1)
    assert np.array_equal(buffer.ep_length, restored.ep_length) and np.array_equal(buffer.n_valid, restored.n_valid)


def test_pickle_of_a_full_buffer_round_trips():
    buffer = make_buffer(FastHerReplayBuffer, 2, "final", 4, seed=3)
    fill(buffer, 2, steps=90)
    assert buffer.full
    restored = pickle.loads(pickle.dumps(buffer))
    restored.set_env(buffer.env)
    assert np.array_equal(restored.observations["observation"], buffer.observations["observation"])
    assert torch.equal(buffer.sample(32).rewards, restored.sample(32).rewards)


def test_vec_normalize_normalises_observations_and_rewards_at_sample_time():
    venv = DummyVecEnv([LabelledGoalEnv])
    norm = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=0.9)
    norm.obs_rms["observation"].mean[:] = 2.0
    norm.obs_rms["observation"].var[:] = 4.0
    norm.ret_rms.var = np.array(9.0)
    buffer = FastHerReplayBuffer(BUFFER_SIZE, venv.observation_space, venv.action_space, norm, device="cpu", seed=1)
    fill(buffer, 1)
    state = buffer.rng.bit_generator.state
    raw = buffer.sample(64)
    buffer.rng.bit_generator.state = state
    normalised = buffer.sample(64, env=norm)
    raw_obs = {key: value.numpy() for key, value in raw.observations.items()}
    expected = norm.normalize_obs(raw_obs)
    for key in raw_obs:
        np.testing.assert_allclose(normalised.observations[key].numpy(), expected[key], rtol=1e-6)
    assert not np.allclose(normalised.observations["observation"].numpy(), raw_obs["observation"])
    np.testing.assert_allclose(normalised.rewards.numpy(), norm.normalize_reward(raw.rewards.numpy()), rtol=1e-6)


def test_info_dicts_reach_compute_reward_when_copied():
    seen: list[Any] = []

    class InfoEnv(LabelledGoalEnv):
        def compute_reward(self, achieved_goal, desired_goal, info):
            seen.append(info)
            return super().compute_reward(achieved_goal, desired_goal, info)

    env = DummyVecEnv([InfoEnv])
    buffer = FastHerReplayBuffer(
        BUFFER_SIZE, env.observation_space, env.action_space, env, device="cpu", copy_info_dict=True, seed=0
    )
    fill(buffer, 1)
    buffer.sample(16)
    assert len(seen) == 1 and len(seen[0]) == int(0.8 * 16)
    assert all("TimeLimit.truncated" in info or info == {} for info in seen[0])
    restored = pickle.loads(pickle.dumps(buffer))
    assert restored.infos.shape == (BUFFER_SIZE, 1) and restored.infos[0, 0] == buffer.infos[0, 0]


@pytest.mark.parametrize("cls", [DDPG, ReenGAGEDDPG, SAC])
def test_trains_with_sb3_and_reengage_agents_and_reloads(tmp_path, cls):
    torch.set_num_threads(1)
    extra = {"reengage_alpha": 0.2} if cls is ReenGAGEDDPG else {}
    env = DummyVecEnv([lambda: gym.make("reengage/ContinuousSeek5-v0") for _ in range(2)])
    model = cls(
        "MultiInputPolicy",
        env,
        replay_buffer_class=FastHerReplayBuffer,
        replay_buffer_kwargs=dict(n_sampled_goal=4, goal_selection_strategy="future"),
        learning_starts=40,
        batch_size=32,
        buffer_size=5_000,
        seed=0,
        device="cpu",
        policy_kwargs=dict(net_arch=[16, 16], share_features_extractor=False),
        **extra,
    )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(200)
    assert model.replay_buffer.n_envs == 2 and model.replay_buffer.pos == 100
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.load_replay_buffer(tmp_path / "buffer.pkl", truncate_last_traj=False)
    assert isinstance(model.replay_buffer, FastHerReplayBuffer) and model.replay_buffer.env is model.get_env()
    model.learn(40, reset_num_timesteps=False)


def test_rewards_through_env_method_for_a_subprocess_vec_env():
    """A SubprocVecEnv has no local env: rewards come through env_method, equal to the direct call."""
    from reengage.agents.her_replay import batch_reward_function
    from stable_baselines3.common.vec_env import SubprocVecEnv

    env = SubprocVecEnv([LabelledGoalEnv, LabelledGoalEnv], start_method="fork")
    try:
        achieved = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
        desired = np.array([[1, 2, 3], [4, 5, 7]], dtype=np.float32)
        reward = batch_reward_function(env)(achieved, desired, [{}, {}])
        assert reward.tolist() == [0.0, -1.0]
        buffer = FastHerReplayBuffer(
            BUFFER_SIZE, env.observation_space, env.action_space, env, device="cpu", n_envs=2, seed=0
        )
        fill(buffer, 2)
        batch = buffer.sample(64)
        relabelled = batch.observations["desired_goal"][:, 0] != NO_GOAL
        hit = (batch.observations["desired_goal"] == batch.next_observations["achieved_goal"]).all(dim=1)
        assert torch.equal(batch.rewards[relabelled, 0], hit[relabelled].float() - 1.0)
    finally:
        env.close()


def test_same_seed_same_training():
    """Two runs with the same seed give the same parameters (the buffer's generator is seeded from it)."""
    torch.set_num_threads(1)

    def run() -> list[torch.Tensor]:
        model = DDPG(
            "MultiInputPolicy",
            gym.make("reengage/ContinuousSeek5-v0"),
            replay_buffer_class=FastHerReplayBuffer,
            learning_starts=30,
            batch_size=16,
            buffer_size=1_000,
            seed=5,
            device="cpu",
            policy_kwargs=dict(net_arch=[8]),
        )
        model.learn(80)
        return [p.detach().clone() for p in model.policy.parameters()]

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_sampling_benchmark_function_reports_both_buffers():
    """bench/bench_her_sampling.py's measure_her_sampling (imported by the training-speed bench) runs and reports."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_her_sampling.py"
    spec = importlib.util.spec_from_file_location("bench_her_sampling", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.measure_her_sampling(d=5, fills=(100, 300), batch_size=32, buffer_size=1_000, rounds=2, batches=3)
    assert [row["fill"] for row in result["fills"]] == [100, 300]
    for row in result["fills"]:
        assert row["sb3_batches_per_s"] > 0 and row["fast_batches_per_s"] > 0
        assert row["speedup"] == pytest.approx(row["fast_batches_per_s"] / row["sb3_batches_per_s"])
    assert "fill" in module.format_her_sampling(result)
    with pytest.raises(ValueError, match="fills must be increasing"):
        module.measure_her_sampling(fills=(300, 100), buffer_size=1_000)
