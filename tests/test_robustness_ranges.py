"""Return ranges come only from the environment's declaration or the user (a too narrow guessed range made certificates false)."""

import json

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
from stable_baselines3 import TD3

from reengage.robustness import SmoothedPolicy, SmoothingConfig, save_smoothed
from reengage.robustness.ranges import ReturnRangeUnknown, declared_reward_range, return_range

# every environment class of the toolkit, with kwargs that keep the episodes short
TOOLKIT = [
    ("reengage/ContinuousSeek5-v0", {}),
    ("reengage/ContinuousSeekDense-v0", {"d": 3, "box": 2.0}),
    ("reengage/BitFlipping-v0", {"n_bits": 5}),
    ("reengage/BitFlippingFixed-v0", {"n_bits": 5}),
    ("reengage/BitFlippingContinuous-v0", {"n_bits": 5}),
    ("reengage/DriveSeek-v0", {"n_max": 200}),
    ("reengage/NoisySeek-v0", {"n_max": 200}),
    ("reengage/TheoryDense-v0", {"d": 3, "horizon": 6}),
    ("reengage/TheorySparse-v0", {"d": 3, "horizon": 6}),
]


def _extreme_actions(env: gym.Env, rng: np.random.Generator) -> np.ndarray:
    """Random actions pushed to the edges of the space (the largest moves the dynamics allow)."""
    a = env.action_space.sample()
    if isinstance(env.action_space, gym.spaces.Box):
        a = np.where(rng.random(a.shape) < 0.5, env.action_space.low, env.action_space.high)
    return a


@pytest.mark.parametrize("env_id,kwargs", TOOLKIT)
def test_every_toolkit_env_declares_a_true_per_step_reward_range(env_id, kwargs):
    env = gym.make(env_id, **kwargs)
    env.action_space.seed(0)
    low, high = declared_reward_range(env)
    rng = np.random.default_rng(0)
    seen = []
    for episode in range(12):
        env.reset(seed=episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(_extreme_actions(env, rng))
            seen.append(reward)
            done = terminated or truncated
    assert low - 1e-6 <= min(seen) and max(seen) <= high + 1e-6
    (r_min, r_max), source = return_range(env)
    assert "declared" in source and r_min <= 0 <= r_max
    if "Seek-v0" in env_id and ("Drive" in env_id or "Noisy" in env_id):
        assert (r_min, r_max) == (0.0, 40.0)  # rewards are >= 0 here; the old guess was (-40, 0)


def test_theory_dense_range_covers_the_worst_case_rewards():
    """g = s0 = all ones and every action along g reach the declared bound d + sqrt(d) H at the last step."""
    env = gym.make("reengage/TheoryDense-v0", d=4, horizon=10).unwrapped
    env.reset(seed=0)
    env._state, env._goal = np.ones(4), np.ones(4)
    direction = env.U.T @ (np.ones(4) / 2.0)  # U a = g / ||g||
    rewards = [env.step(direction)[1] for _ in range(10)]
    assert rewards[-1] == pytest.approx(env.reward_range[1], rel=1e-5)
    assert rewards[-1] > 10.0  # the old guess [-1, 0] per step ([-10, 0] per episode) was false


def test_without_declaration_or_user_range_the_return_certificate_is_refused():
    class Undeclared(gym.Env):
        observation_space = gym.spaces.Box(-1, 1, (2,))
        action_space = gym.spaces.Discrete(2)
        horizon = 5

    with pytest.raises(ReturnRangeUnknown, match="--return-range MIN MAX"):
        return_range(Undeclared())
    assert return_range(Undeclared(), (-3.0, 2.0)) == ((-3.0, 2.0), "user (--return-range)")
    # a wrapper that changes rewards voids the environment's declaration
    scaled = gym.wrappers.TransformReward(gym.make("reengage/BitFlipping-v0", n_bits=4), lambda r: 100 * r)
    assert declared_reward_range(scaled) is None


def _attack_theory_dense(smoothed, env, episodes, budget, seed):
    """An adversary with total l2 budget ``budget`` over the episode (spent evenly) on the smoothed keys: each step
    it shifts the observed state (both copies) to the candidate whose base action lowers g . s' the most."""
    from reengage.robustness.episode import run_episodes

    base = env.unwrapped
    horizon = base.horizon
    per_step = budget / np.sqrt(horizon) / np.sqrt(2.0)  # the state appears in two smoothed keys
    rng = np.random.default_rng(seed)

    def perturb(obs, t):
        goal = obs["desired_goal"].astype(np.float64)
        cands = rng.standard_normal((64, base.d))
        cands = per_step * cands / np.linalg.norm(cands, axis=1, keepdims=True)
        flats = np.concatenate([obs["observation"] + cands, obs["achieved_goal"] + cands], axis=1)
        actions = smoothed.base_outputs_flat(smoothed.as_dict(obs), flats)
        moved = actions / np.maximum(np.linalg.norm(actions, axis=1, keepdims=True), 1.0) @ base.U.T
        worst = cands[int(np.argmin(moved @ goal))]
        return {**obs, "observation": obs["observation"] + worst, "achieved_goal": obs["achieved_goal"] + worst}

    return run_episodes(smoothed, env, episodes, seed=seed, perturb=perturb)[0]


def test_theory_dense_return_attack_stays_above_the_certificate(tmp_path):
    """Regression: the CLI once guessed [-10, 0] for TheoryDense and "certified" -10 at B = 15 where an attack got -16.1.
    Now the range is the declared one, the attack's returns lie inside it and its mean stays above the bound."""
    from reengage.certify import main

    env_id, kwargs = "reengage/TheoryDense-v0", {"d": 4, "horizon": 10}
    model = TD3("MultiInputPolicy", gym.make(env_id, **kwargs), policy_kwargs={"net_arch": [16]}, seed=3, device="cpu")
    cfg = SmoothingConfig(sigma=1.0)
    save_smoothed(model, tmp_path / "td3", cfg, seed=0, env_id=env_id, env_kwargs=kwargs)
    out = tmp_path / "out"
    code = main(
        [
            "--model",
            str(tmp_path / "td3.zip"),
            "--env",
            env_id,
            "--env-kwargs",
            json.dumps(kwargs),
            "--states",
            "1",
            "--n",
            "200",
            "--eps",
            "0.1",
            "--attack-steps",
            "2",
            "--episodes",
            "100",
            "--budgets",
            "0,1,15",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    ep = json.loads((out / "report.json").read_text())["episode"]
    r_min, r_max = ep["return_range"]
    assert (r_min, r_max) == (-240.0, 240.0)  # 10 steps x (d + sqrt(d) H) = 10 x 24
    smoothed = SmoothedPolicy(model, cfg, seed=7)
    for budget, bound in zip(ep["budgets"][1:], ep["certified_return"][1:]):
        returns = _attack_theory_dense(smoothed, gym.make(env_id, **kwargs), 100, budget, seed=11)
        assert r_min <= returns.min() and returns.max() <= r_max
        assert returns.mean() - 3 * returns.std() / np.sqrt(returns.size) >= bound
    # the attack does reach returns far below the old guess of -10 at B = 15
    assert returns.min() < -10.0
