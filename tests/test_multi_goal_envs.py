"""DriveSeek and NoisySeek (App. G.6.4): checkers, seeding, rewards, dynamics, goal samplers, greedy agents."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
from gymnasium.utils.env_checker import check_env as gym_check_env
from reengage.envs.drive_seek import DriveSeekEnv, sample_drive_seek_goals, wrap
from reengage.envs.goal_set import item_rewards, pad_goal_set
from reengage.envs.goal_set_greedy import DriveSeekGreedy, NoisySeekGreedy, greedy_agent
from reengage.envs.noisy_seek import CLUSTER_P, NoisySeekEnv, sample_noisy_seek_goals
from stable_baselines3.common.env_checker import check_env as sb3_check_env

ENV_IDS = ["reengage/DriveSeek-v0", "reengage/NoisySeek-v0"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_envs_pass_gymnasium_and_sb3_checkers(env_id):
    env = gym.make(env_id, render_mode="rgb_array").unwrapped
    with warnings.catch_warnings():
        # the checkers only *recommend* flat goal arrays, [-1, 1] actions and finite bounds; the
        # spaces are the paper's (a in [-0.5, 0.5] rad; NoisySeek is unbounded)
        warnings.simplefilter("ignore")
        gym_check_env(env)
        sb3_check_env(env)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"observation", "goals", "gates"}
    assert obs["goals"].shape == (200, 2) and obs["gates"].shape == (200,)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_episode(env_id):
    def episode(seed):
        env = gym.make(env_id)
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        out = [obs["goals"].copy(), obs["gates"].copy()]
        for _ in range(40):
            obs, reward, *_ = env.step(env.action_space.sample())
            out += [obs["observation"].copy(), np.array([reward])]
        return out

    first, again, other = episode(3), episode(3), episode(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_item_rewards_sum_to_reward_and_match_vectorised_method(env_id):
    env = gym.make(env_id)
    unwrapped = env.unwrapped
    env.action_space.seed(1)
    total_items = 0.0
    for episode in range(5):
        obs, _ = env.reset(seed=100 + episode)
        for _ in range(40):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            items = info["item_rewards"]
            assert items.shape == (200,)
            assert items.sum() == reward
            assert np.all(items[obs["gates"] == 0] == 0)
            achieved = unwrapped.achieved_goal(obs["observation"])
            np.testing.assert_array_equal(unwrapped.item_rewards(achieved, obs["goals"], obs["gates"]), items)
            assert unwrapped.total_reward(achieved, obs["goals"], obs["gates"]) == reward
            total_items += items.sum()
        assert truncated and not terminated
    assert total_items > 0  # the check above was not vacuous


def test_item_rewards_vectorised_over_batches():
    goals, gates = pad_goal_set(np.array([[1.0, 2.0], [3.0, 4.0]]), 5)
    achieved = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 2.0]])
    items = item_rewards(achieved, np.broadcast_to(goals, (3, 5, 2)), np.broadcast_to(gates, (3, 5)))
    np.testing.assert_array_equal(items, [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    # a padding slot's dummy coordinates (0, 0) never pay, even when the agent stands on (0, 0)
    assert items[1].sum() == 0


def test_drive_seek_wraps_and_keeps_speed_one():
    env = DriveSeekEnv()
    env.reset(seed=0)
    xs = []
    for _ in range(12):  # heading 0, no turning: along the x axis, across the right edge
        obs, *_ = env.step(np.zeros(1, dtype=np.float32))
        xs.append(obs["observation"][0])
    np.testing.assert_allclose(xs[:9], np.arange(1, 10), atol=1e-6)
    np.testing.assert_allclose(xs[9:], [-10.0, -9.0, -8.0], atol=1e-6)  # 10 wraps onto -10

    rng = np.random.default_rng(0)
    env.reset(seed=1)
    previous = np.zeros(2)
    for _ in range(40):
        obs, *_ = env.step(rng.uniform(-0.5, 0.5, size=1).astype(np.float32))
        position = obs["observation"][:2].astype(np.float64)
        assert np.all(position >= -10) and np.all(position < 10)
        step = wrap(position - previous)  # displacement on the torus
        assert np.linalg.norm(step) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_array_equal(obs["observation"][2:4], np.floor(position + 0.5))
        sin, cos = obs["observation"][4:6]
        assert sin**2 + cos**2 == pytest.approx(1.0, abs=1e-6)
        previous = position
    # the action is a turn of at most 0.5 rad: a larger request is clipped
    env.reset(seed=2)
    obs, *_ = env.step(np.array([3.0], dtype=np.float32))
    assert np.arctan2(obs["observation"][4], obs["observation"][5]) == pytest.approx(0.5, abs=1e-6)


def test_drive_seek_goal_sampler():
    rng = np.random.default_rng(0)
    counts = []
    for _ in range(8000):
        goals = sample_drive_seek_goals(rng)
        counts.append(len(goals))
        assert len(np.unique(goals, axis=0)) == len(goals)  # without replacement
        assert np.all(goals == np.round(goals)) and np.all(np.abs(goals) <= 10)
    counts = np.array(counts)
    assert counts.min() >= 1 and counts.max() <= 200
    assert counts.mean() == pytest.approx(100.5, abs=2.0)  # U{1..200}: sd 57.7, se 0.65


def test_noisy_seek_goal_sampler_distribution():
    rng = np.random.default_rng(0)
    draws = [sample_noisy_seek_goals(rng) for _ in range(10000)]
    clusters = np.array([draw.n_clusters for draw in draws])
    requested = np.array([draw.n_requested for draw in draws])
    kept = np.array([len(draw.goals) for draw in draws])
    # Geometric(0.15) on {1, 2, ...}: mean 1/p = 6.67 (sd 6.15, se 0.06), P(1) = 0.15
    assert clusters.min() == 1
    assert clusters.mean() == pytest.approx(1 / CLUSTER_P, abs=0.2)
    assert np.mean(clusters == 1) == pytest.approx(CLUSTER_P, abs=0.01)
    assert requested.min() >= 1 and requested.max() <= 200
    assert requested.mean() == pytest.approx(100.5, abs=1.5)
    # de-duplication: distinct integer goals, never more than requested, and it does bite
    for draw in draws[:500]:
        assert len(np.unique(draw.goals, axis=0)) == len(draw.goals)
        assert np.all(draw.goals == np.round(draw.goals))
    assert np.all(kept <= requested) and np.mean(kept < requested) > 0.5
    # large single-cluster sets concentrate in a few dozen cells around the centre (std 2 per axis;
    # de-duplication thins the crowded middle, so the spread of the kept goals is a little larger)
    single = [draw for draw in draws if draw.n_clusters == 1 and draw.n_requested > 150]
    spread = np.mean([draw.goals.std(axis=0).mean() for draw in single])
    assert 2.0 < spread < 3.0


def test_noisy_seek_action_is_capped_at_unit_norm():
    env = NoisySeekEnv(noise_std=0.0)
    env.reset(seed=0)
    obs, *_ = env.step(np.array([1.0, 1.0], dtype=np.float32))
    np.testing.assert_allclose(obs["observation"][:2], [2**-0.5, 2**-0.5], atol=1e-6)
    obs, *_ = env.step(np.array([0.3, 0.0], dtype=np.float32))  # inside the disc: unchanged
    np.testing.assert_allclose(obs["observation"][:2], [2**-0.5 + 0.3, 2**-0.5], atol=1e-6)


def test_noisy_seek_motion_noise_has_unit_variance():
    env = NoisySeekEnv()
    env.reset(seed=0)
    steps = []
    for episode in range(50):
        env.reset(seed=episode)
        previous = np.zeros(2)
        for _ in range(40):
            obs, *_ = env.step(np.zeros(2, dtype=np.float32))
            steps.append(obs["observation"][:2] - previous)
            previous = obs["observation"][:2].astype(np.float64)
    steps = np.array(steps)
    assert steps.std(axis=0) == pytest.approx([1.0, 1.0], abs=0.05)
    assert steps.mean(axis=0) == pytest.approx([0.0, 0.0], abs=0.06)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_render_draws_the_episode(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    blank = env.render()
    for _ in range(40):
        env.step(env.action_space.sample())
    picture = env.render()
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert not np.array_equal(picture, blank)  # the path and visited cells appear
    with pytest.raises(ValueError, match="render_mode"):
        type(env.unwrapped)(render_mode="human")


def test_greedy_agents_head_for_the_nearest_goal():
    goals, gates = pad_goal_set(np.array([[5.0, 0.0], [0.0, -2.0], [-9.0, -9.0]]), 200)
    obs = {"observation": np.zeros(4, np.float32), "goals": goals, "gates": gates}
    action, _ = NoisySeekGreedy().predict(obs)
    np.testing.assert_allclose(action, [0.0, -1.0], atol=1e-6)
    batch = {key: np.stack([value, value]) for key, value in obs.items()}
    assert NoisySeekGreedy().predict(batch)[0].shape == (2, 2)
    # DriveSeek: heading 0 at the origin; nearest goal (0, -2) lies 90 degrees to the right -> max right turn
    drive = {"observation": np.array([0, 0, 0, 0, 0, 1], np.float32), "goals": goals, "gates": gates}
    np.testing.assert_allclose(DriveSeekGreedy().predict(drive)[0], [-0.5])
    # across the edge is nearer: from (9.6, 0) heading 0, goal (-9, -9)... (5, 0) is 4.6 back, (-9,-9) wraps
    drive["observation"] = np.array([9.6, 8.9, 10, 9, 0, 1], np.float32)
    turn = DriveSeekGreedy().predict(drive)[0][0]
    assert 0 < turn <= 0.5  # (-9, -9) is 1.4 ahead and 0.1 up across the corner, not 19 away
    with pytest.raises(ValueError, match="valid ids"):
        greedy_agent("reengage/ContinuousSeek-v0")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_greedy_beats_random(env_id):
    env = gym.make(env_id)
    env.action_space.seed(0)
    agent = greedy_agent(env_id)
    greedy_total, random_total = 0.0, 0.0
    for episode in range(10):
        obs, _ = env.reset(seed=episode)
        for _ in range(40):
            obs, reward, *_ = env.step(agent.predict(obs)[0])
            greedy_total += reward
        env.reset(seed=episode)
        for _ in range(40):
            random_total += env.step(env.action_space.sample())[1]
    assert greedy_total > random_total


def test_reset_accepts_a_given_goal_set():
    env = DriveSeekEnv()
    obs, info = env.reset(seed=0, options={"goals": [[1, 0], [2, 0]]})
    assert info["n_goals"] == 2 and obs["gates"].sum() == 2
    rewards = [env.step(np.zeros(1, dtype=np.float32))[1] for _ in range(3)]
    assert rewards == [1.0, 1.0, 0.0]  # straight along x: (1, 0), (2, 0), then (3, 0) holds no goal
    with pytest.raises(ValueError, match="n_max"):
        DriveSeekEnv(n_max=2).reset(options={"goals": [[0, 1], [0, 2], [0, 3]]})


def test_greedy_line_command(capsys):
    from reengage.greedy import main as greedy_main
    from reengage.greedy import mean_return

    # the greedy agent is deterministic and the episodes are seeded: the same line every time
    first = mean_return("reengage/NoisySeek-v0", 3, 1_000_000)
    assert first == mean_return("reengage/NoisySeek-v0", 3, 1_000_000)
    assert greedy_main(["--env", "reengage/NoisySeek-v0", "--episodes", "3"]) == 0
    assert f"average return {first:.2f} over 3 episodes from seed 1000000" in capsys.readouterr().out
    assert greedy_main(["--env", "reengage/Nope-v0", "--episodes", "0"]) == 2
    err = capsys.readouterr().err
    valid = "reengage/DriveSeek-v0, reengage/DriveSeek50-v0, reengage/NoisySeek-v0, reengage/NoisySeek50-v0"
    assert f"'reengage/Nope-v0' has no greedy agent; valid: {valid}" in err
    assert "--episodes must be >= 1, got 0" in err and "Traceback" not in err


def test_greedy_command_draws_its_first_episode(tmp_path, capsys):
    from PIL import Image

    from reengage.greedy import main as greedy_main
    from reengage.greedy import mean_return

    path = tmp_path / "pictures" / "greedy.png"
    path.parent.mkdir()
    assert (
        greedy_main(["--env", "reengage/DriveSeek-v0", "--episodes", "1", "--seed", "7", "--picture", str(path)]) == 0
    )
    out = capsys.readouterr().out
    assert f"picture: {path} (episode seed 7, return {mean_return('reengage/DriveSeek-v0', 1, 7):.2f})" in out
    # the drawing of the greedy agent's episode of seed 7, as the environment draws it at the end
    env = gym.make("reengage/DriveSeek-v0")
    agent = greedy_agent("reengage/DriveSeek-v0")
    obs, _ = env.reset(seed=7)
    for _ in range(40):
        obs, *_ = env.step(agent.predict(obs)[0])
    with Image.open(path) as picture:
        assert np.array_equal(np.asarray(picture.convert("RGB")), env.unwrapped.draw())
    assert greedy_main(["--env", "reengage/DriveSeek-v0", "--picture", str(tmp_path / "greedy.jpg")]) == 2
    err = capsys.readouterr().err
    assert "'.jpg'; valid: .png" in err and "Traceback" not in err and not (tmp_path / "greedy.jpg").exists()


@pytest.mark.parametrize("env_id", ["reengage/DriveSeek50-v0", "reengage/NoisySeek50-v0"])
def test_the_fifty_goal_ids_pad_to_fifty_slots_and_draw_at_most_fifty_goals(env_id):
    env = gym.make(env_id).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the checkers' recommendations, as for the 200-goal ids
        gym_check_env(env)
        sb3_check_env(env)
    counts = []
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        assert obs["goals"].shape == (50, 2) and obs["gates"].shape == (50,)
        counts.append(int(obs["gates"].sum()))
    assert 1 <= min(counts) and max(counts) <= 50
    # DriveSeek draws n ~ U{1..50} exactly; NoisySeek de-duplicates its rounded goals, so it may hold fewer
    assert max(counts) >= 40
    assert type(greedy_agent(env_id)) is type(greedy_agent(env_id.replace("50", "")))


def test_random_policy_line_is_reproducible_and_below_the_greedy_line(capsys):
    from reengage.greedy import evaluate_greedy
    from reengage.greedy import main as greedy_main

    env_id = "reengage/NoisySeek50-v0"
    random_line = evaluate_greedy(env_id, 10, 1_000_000, policy="random").mean_reward
    assert random_line == evaluate_greedy(env_id, 10, 1_000_000, policy="random").mean_reward
    assert random_line < evaluate_greedy(env_id, 10, 1_000_000).mean_reward
    assert greedy_main(["--env", env_id, "--episodes", "10", "--policy", "random"]) == 0
    out = capsys.readouterr().out
    assert f"random (uniform actions): average return {random_line:.2f} over 10 episodes" in out
    assert greedy_main(["--env", env_id, "--policy", "best"]) == 2
    err = capsys.readouterr().err
    assert "--policy 'best' is not one of greedy, random" in err and "Traceback" not in err
