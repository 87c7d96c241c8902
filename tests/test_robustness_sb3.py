"""SB3 models: adapter, save/load with the smoothing sidecar (same seed, same certificates), CLI, noise wrapper,
and the refusals of unsound settings."""

import json

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
from stable_baselines3 import DQN, TD3

from reengage.robustness import (
    AblationObservationNoise,
    GaussianObservationNoise,
    SmoothedPolicy,
    SmoothingConfig,
    certify_continuous_l2,
    certify_discrete_l2,
    certify_l0_deterministic,
    load_smoothed,
    save_smoothed,
    wrap_with_noise,
)
from reengage.robustness.smoothing import PolicyAdapter


@pytest.fixture(scope="module")
def tiny_td3(tmp_path_factory):
    env = GaussianObservationNoise(gym.make("reengage/ContinuousSeek5-v0"), sigma=0.1, seed=0)
    model = TD3(
        "MultiInputPolicy",
        env,
        learning_starts=50,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
        buffer_size=1000,
        train_freq=(1, "episode"),
        gradient_steps=5,
    )
    model.learn(120)
    return model


@pytest.fixture(scope="module")
def tiny_dqn():
    env = AblationObservationNoise(gym.make("reengage/BitFlipping-v0", n_bits=6), groups=4, seed=0)
    # ablated MultiBinary keys become float Box, so the buffer keeps the 0.5 null values
    assert env.observation_space["observation"].dtype == np.float32
    model = DQN(
        "MultiInputPolicy",
        env,
        learning_starts=50,
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
        buffer_size=1000,
    )
    model.learn(120)
    return model


def test_adapter_matches_sb3_predict(tiny_td3, tiny_dqn):
    env = gym.make("reengage/ContinuousSeek5-v0")
    obs, _ = env.reset(seed=3)
    adapter = PolicyAdapter.from_sb3(tiny_td3)
    mine = adapter.actions(adapter.to_tensors({k: v[None] for k, v in obs.items()}))[0]
    theirs, _ = tiny_td3.predict(obs, deterministic=True)
    assert np.allclose(mine, theirs, atol=1e-5)
    env = gym.make("reengage/BitFlipping-v0", n_bits=6)
    obs, _ = env.reset(seed=3)
    adapter = PolicyAdapter.from_sb3(tiny_dqn)
    assert (
        adapter.actions(adapter.to_tensors({k: v[None] for k, v in obs.items()}))[0]
        == tiny_dqn.predict(obs, deterministic=True)[0]
    )


def test_save_load_reproduces_certificates(tiny_td3, tmp_path):
    cfg = SmoothingConfig(sigma=0.1)
    path = save_smoothed(tiny_td3, tmp_path / "td3", cfg, seed=11)
    assert (tmp_path / "td3.smoothing.json").exists()
    obs, _ = gym.make("reengage/ContinuousSeek5-v0").reset(seed=0)
    a = certify_continuous_l2(load_smoothed(path), obs, n=2000, alpha=0.01, tolerance=0.5)
    b = certify_continuous_l2(load_smoothed(path), obs, n=2000, alpha=0.01, tolerance=0.5)
    c = certify_continuous_l2(load_smoothed(path, seed=12), obs, n=2000, alpha=0.01, tolerance=0.5)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()
    assert load_smoothed(path).config == cfg
    from reengage.algorithms import detect_algorithm

    assert detect_algorithm(path) == "TD3"


def test_deterministic_ablation_on_trained_dqn_and_noise_in_raw_space(tiny_dqn):
    sp = SmoothedPolicy(tiny_dqn, SmoothingConfig(kind="deterministic_ablation", groups=4), seed=0)
    obs, _ = gym.make("reengage/BitFlipping-v0", n_bits=6).reset(seed=1)
    cert = certify_l0_deterministic(sp, obs)
    assert cert.alpha == 0 and cert.radius >= 0 and cert.action == sp.smoothed_action(obs)
    # a normaliser runs AFTER the noise: a shift normaliser changes the input, not the noise scale
    seen = []

    def normalizer(batch):
        seen.append(np.asarray(batch["observation"]).copy())
        return batch

    sp2 = SmoothedPolicy(tiny_dqn, SmoothingConfig(kind="deterministic_ablation", groups=4), obs_normalizer=normalizer)
    certify_l0_deterministic(sp2, obs)
    vals = np.unique(np.concatenate(seen))
    assert set(vals.tolist()) <= {0.0, 0.5, 1.0}


def test_batches_and_seeds_reproducible(tiny_td3):
    obs, _ = gym.make("reengage/ContinuousSeek5-v0").reset(seed=0)
    a = SmoothedPolicy(tiny_td3, SmoothingConfig(sigma=0.2), seed=5, batch_size=10_000).sample(obs, 3000).outputs
    b = SmoothedPolicy(tiny_td3, SmoothingConfig(sigma=0.2), seed=5, batch_size=10_000).sample(obs, 3000).outputs
    assert np.array_equal(a, b)


def test_noise_wrapper_draws_right_noise():
    env = GaussianObservationNoise(gym.make("reengage/ContinuousSeek5-v0"), sigma=0.3, seed=0)
    clean = gym.make("reengage/ContinuousSeek5-v0")
    diffs = []
    for i in range(400):
        o, _ = env.reset(seed=i)
        c, _ = clean.reset(seed=i)
        assert np.array_equal(o["desired_goal"], c["desired_goal"])  # the goal is never noised by default
        diffs.append(np.r_[o["observation"] - c["observation"], o["achieved_goal"] - c["achieved_goal"]])
    diffs = np.array(diffs)
    assert abs(diffs.std() - 0.3) < 0.02
    # independent noise on the two copies of the state (correlated noise would void the certificate)
    assert abs(np.corrcoef(diffs[:, 0], diffs[:, 5])[0, 1]) < 0.15
    assert wrap_with_noise(clean, None) is clean
    ab = AblationObservationNoise(gym.make("reengage/BitFlipping-v0", n_bits=6), retain=3, seed=0)
    o, _ = ab.reset(seed=0)
    flat = np.r_[o["observation"], o["achieved_goal"]]
    assert np.sum(flat != 0.5) <= 3 and np.sum(flat == 0.5) >= 9


def test_unsound_settings_refused(tiny_td3):
    with pytest.raises(ValueError, match="correlated"):
        SmoothingConfig(sigma=0.2, covariance=[[0.04, 0.01], [0.01, 0.04]])
    with pytest.raises(ValueError, match="non-isotropic|isotropic"):
        SmoothingConfig(sigma=[0.1, 0.2])
    assert SmoothingConfig(covariance=np.eye(3) * 0.04).sigma == pytest.approx(0.2)
    with pytest.raises(ValueError, match="sigma"):
        SmoothingConfig(sigma=0.0)
    with pytest.raises(ValueError, match="kind"):
        SmoothingConfig(kind="laplace", sigma=1.0)
    with pytest.raises(ValueError, match="not in the observation space"):
        SmoothedPolicy(tiny_td3, SmoothingConfig(sigma=0.1, keys=("state",)))
    sp = SmoothedPolicy(tiny_td3, SmoothingConfig(sigma=0.1))
    obs, _ = gym.make("reengage/ContinuousSeek5-v0").reset(seed=0)
    for alpha in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="open interval"):
            certify_continuous_l2(sp, obs, n=100, alpha=alpha)
    with pytest.raises(ValueError, match="Discrete"):
        certify_discrete_l2(sp, obs)


def test_cli_end_to_end(tiny_dqn, tiny_td3, tmp_path, capsys):
    from reengage.certify import main

    save_smoothed(tiny_dqn, tmp_path / "dqn", SmoothingConfig(kind="deterministic_ablation", groups=4), seed=0)
    out = tmp_path / "bf"
    main(
        [
            "--model",
            str(tmp_path / "dqn.zip"),
            "--env",
            "reengage/BitFlipping-v0",
            "--env-kwargs",
            '{"n_bits": 6}',
            "--states",
            "6",
            "--eps",
            "1,2",
            "--out",
            str(out),
        ]
    )
    rep = json.loads((out / "report.json").read_text())
    assert rep["per_state"]["kind"] == "discrete_l0_deterministic" and len(rep["per_state"]["radii"]) == 6
    assert rep["population"][0]["attack_robust_upper"] is not None
    assert (out / "radius_histogram.png").stat().st_size > 1000

    save_smoothed(tiny_td3, tmp_path / "td3", SmoothingConfig(sigma=0.1), seed=0)
    out = tmp_path / "cs"
    main(
        [
            "--model",
            str(tmp_path / "td3.zip"),
            "--env",
            "reengage/ContinuousSeek5-v0",
            "--states",
            "3",
            "--n",
            "1000",
            "--episodes",
            "20",
            "--eps",
            "0.1",
            "--attack-steps",
            "3",
            "--tolerance",
            "0.5",
            "--out",
            str(out),
        ]
    )
    rep = json.loads((out / "report.json").read_text())
    ep = rep["episode"]
    assert len(ep["certified_success"]) == len(ep["budgets"]) and ep["return_range"] == [-10.0, 0.0]
    assert all(np.diff(ep["certified_return"]) <= 1e-12)
    assert (out / "episode_certificates.png").exists()
    # an unsound setting is refused: exit code 2 and the reason on stderr, no report
    (out / "report.json").unlink()
    code = main(
        [
            "--model",
            str(tmp_path / "td3.zip"),
            "--env",
            "reengage/ContinuousSeek5-v0",
            "--states",
            "1",
            "--tolerance",
            "3.0",
            "--out",
            str(out),
        ]
    )
    assert code == 2 and "tolerance" in capsys.readouterr().err
    assert not (out / "report.json").exists()
