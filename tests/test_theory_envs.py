"""The two theory environment classes of Sec. 8.6.2 / App. G.1 (TheoryDense, TheorySparse)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401  (registers the ids)
from gymnasium.utils.env_checker import check_env
from reengage.envs import TheoryDenseEnv, TheorySparseEnv
from reengage.envs.theory_dense import project_to_unit_ball, random_rotation


@pytest.mark.parametrize("env_id", ["reengage/TheoryDense-v0", "reengage/TheorySparse-v0"])
def test_registered_and_passes_check_env(env_id):
    env = gym.make(env_id, d=6, rotation_seed=3)
    assert env.unwrapped.d == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env reports problems as warnings: none allowed
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("d", [2, 3, 7, 16])
def test_rotation_is_special_orthogonal_and_seeded(d):
    u = random_rotation(d, seed=5)
    np.testing.assert_allclose(u @ u.T, np.eye(d), atol=1e-12)
    assert np.linalg.det(u) == pytest.approx(1.0)
    np.testing.assert_array_equal(u, random_rotation(d, seed=5))
    assert not np.allclose(u, random_rotation(d, seed=6))
    # the same seed names the same member of both classes
    np.testing.assert_array_equal(TheoryDenseEnv(d=d, rotation_seed=5).U, TheorySparseEnv(d=d, rotation_seed=5).U)


def test_actions_outside_the_ball_are_projected_onto_it():
    a = np.array([[3.0, 4.0], [0.3, 0.4]])
    np.testing.assert_allclose(project_to_unit_ball(a), [[0.6, 0.8], [0.3, 0.4]])


def test_dense_step_is_s_plus_u_a_with_reward_g_dot_s_next():
    env = TheoryDenseEnv(d=4, rotation_seed=1, horizon=3)
    obs, _ = env.reset(seed=0)
    s, g = obs["observation"].astype(np.float64), obs["desired_goal"].astype(np.float64)
    a = np.array([0.5, -0.5, 0.1, 0.2])
    obs2, reward, terminated, truncated, _ = env.step(a)
    expected = s + env.U @ a
    np.testing.assert_allclose(obs2["observation"], expected, atol=1e-6)
    np.testing.assert_allclose(obs2["achieved_goal"], expected, atol=1e-6)
    assert reward == pytest.approx(float(g @ expected), abs=1e-5)
    assert not terminated and not truncated
    env.step(a)
    assert env.step(a)[3]  # time-out after `horizon` steps


def test_sparse_two_phase_transition_and_reward():
    env = TheorySparseEnv(d=3, rotation_seed=2)
    obs, _ = env.reset(seed=1)
    s1, g = obs["observation"][:3].astype(np.float64), obs["desired_goal"].astype(np.float64)
    assert np.all(obs["observation"][3:] == 0) and np.any(s1 != 0)
    a = np.array([0.2, 0.3, -0.4])
    obs1, r1, *_ = env.step(a)
    moved = s1 + env.U @ a
    np.testing.assert_allclose(obs1["observation"], np.concatenate([np.zeros(3), moved]), atol=1e-6)
    assert r1 == 0.0 == env.c_low  # the acting step always earns c_low, exactly
    obs2, r2, *_ = env.step(np.array([1.0, 0.0, 0.0]))  # ignored in the revealing phase
    np.testing.assert_allclose(obs2["observation"], np.concatenate([moved, np.zeros(3)]), atol=1e-6)
    assert r2 == pytest.approx(float(g @ moved), abs=1e-5)


def test_vectorised_dynamics_and_reward_match_steps():
    env = TheorySparseEnv(d=2, rotation_seed=0)
    states = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.5, -0.5]])
    actions = np.array([[0.0, 1.0], [1.0, 0.0]])
    nxt = env.dynamics(states, actions)
    np.testing.assert_allclose(nxt[0], np.r_[0.0, 0.0, np.array([1.0, 0.0]) + env.U @ [0.0, 1.0]])
    np.testing.assert_allclose(nxt[1], [0.5, -0.5, 0.0, 0.0])
    np.testing.assert_allclose(env.compute_reward(nxt[:, :2], np.ones((2, 2))), [0.0, 0.0], atol=1e-7)


@pytest.mark.parametrize("cls", [TheoryDenseEnv, TheorySparseEnv])
@pytest.mark.parametrize("kwargs", [{"d": 0}, {"d": 2.5}, {"horizon": 0}])
def test_bad_arguments_raise(cls, kwargs):
    with pytest.raises(ValueError):
        cls(**kwargs)
