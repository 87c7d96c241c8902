"""``python -m reengage.evaluate RUN_DIR``: the run's own last evaluation, reproduced exactly from the
run folder (noise wrapper included); videos for ContinuousSeek and bit flipping; metrics and logs."""

import csv
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import reengage.envs  # noqa: F401
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from reengage import evaluate
from reengage.experiment.config import resolve_config
from reengage.experiment.evaluation import SUCCESS_EVER, evaluate_goal_policy
from reengage.experiment.runner import DurationEstimate, hyperparameters, train_run

NOISE = "observation_noise={kind: gaussian, sigma: 0.3, keys: [observation, achieved_goal]}"


@pytest.fixture(scope="module")
def noisy_dense_run(tmp_path_factory):
    """ContinuousSeekDense (returns are real numbers, so any difference shows) trained under noise."""
    run_dir = tmp_path_factory.mktemp("dense") / "run"
    config = resolve_config(
        "reengage/ContinuousSeekDense-v0",
        "ddpg",
        0.2,
        300,
        [
            "net_arch=[16,16]",
            "batch_size=32",
            "learning_starts=50",
            "eval_episodes=4",
            "buffer_size=2000",
            "eval_freq=150",
            "checkpoint_every=150",
            NOISE,
        ],
    )
    train_run(config, 0, run_dir, progress=False, verbose=False)
    return run_dir


def _episodes(run_dir: Path, step: int):
    with open(run_dir / "episodes.csv") as handle:
        return [row for row in csv.DictReader(handle) if int(row["step"]) == step]


def _evaluate(capsys, *argv):
    code = evaluate.main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_reproduces_the_runs_last_evaluation_exactly(noisy_dense_run, capsys):
    code, out, _ = _evaluate(capsys, noisy_dense_run, "--json")
    assert code == 0
    episodes = json.loads(out.strip().splitlines()[-1])
    expected = _episodes(noisy_dense_run, 300)
    assert len(episodes) == len(expected) == 4
    for mine, theirs in zip(episodes, expected):
        assert mine["seed"] == int(theirs["seed"]) and mine["length"] == int(theirs["length"])
        assert repr(mine["return"]) == repr(float(theirs["return"]))  # bit for bit
    assert len({round(row["return"], 6) for row in episodes}) > 1  # real numbers, not a constant

    # the noise wrapper is part of what is recovered: without it the numbers differ
    code, out, _ = _evaluate(capsys, noisy_dense_run, "--json", "--seed", "1000000")
    assert json.loads(out.strip().splitlines()[-1]) == episodes
    from reengage.experiment.run_folder import RunFolder

    config, model = RunFolder(noisy_dense_run).load_model()
    clean = evaluate_goal_policy(model, gym.make(config["env_id"]), 4, config["eval_seed"])
    assert not np.allclose(clean.returns, [row["return"] for row in episodes])


def test_evaluate_with_other_episodes_and_seed(noisy_dense_run, capsys):
    code, out, _ = _evaluate(capsys, noisy_dense_run, "--episodes", "2", "--seed", "5", "--json")
    assert code == 0
    rows = json.loads(out.strip().splitlines()[-1])
    assert [row["seed"] for row in rows] == [5, 6]


def test_continuous_seek_video_is_written(noisy_dense_run, tmp_path, capsys):
    path = tmp_path / "videos" / "seek.gif"
    path.parent.mkdir()
    code, out, _ = _evaluate(capsys, noisy_dense_run, "--video", path, "--video-episodes", "2", "--episodes", "3")
    assert code == 0 and f"video: {path}" in out
    with Image.open(path) as video:
        assert video.n_frames == 2 * 11  # two episodes of 10 steps, with their first frames
        assert video.size[0] >= 200


def test_bit_flipping_video_is_written(tmp_path, capsys):
    run_dir = tmp_path / "bits"
    config = resolve_config(
        "reengage/BitFlipping-v0",
        "dqn",
        0.0,
        200,
        ["net_arch=[16]", "eval_episodes=2", "eval_freq=200", "buffer_size=1000", "checkpoint_every=0"],
    )
    train_run(config, 0, run_dir, progress=False, verbose=False)
    path = tmp_path / "bits.gif"
    code, out, _ = _evaluate(capsys, run_dir, "--video", path)
    assert code == 0
    with Image.open(path) as video:
        assert video.n_frames == 11
        frames = []
        for index in range(video.n_frames):
            video.seek(index)
            frames.append(np.asarray(video.convert("RGB")))
    assert any(not np.array_equal(frames[0], frame) for frame in frames[1:])  # bits flip on screen


def test_picture_of_a_goal_set_run_draws_its_first_evaluation_episode(tmp_path, capsys):
    # a tiny Multi-ReenGAGE run on DriveSeek: the picture is what the env draws after the run's first
    # evaluation episode (seed eval_seed) with the trained policy, i.e. Fig. 8.4 (a, c) for that run
    from reengage.experiment.run_folder import RunFolder

    run_dir = tmp_path / "drive"
    config = resolve_config(
        "reengage/DriveSeek-v0",
        "multi_ddpg",
        10.0,
        80,
        [
            "net_arch=[8]",
            "policy_kwargs={encoder_arch: [8], embed_dim: 4}",
            "batch_size=16",
            "learning_starts=40",
            "buffer_size=500",
            "eval_freq=80",
            "eval_episodes=2",
            "checkpoint_every=0",
        ],
    )
    train_run(config, 0, run_dir, progress=False, verbose=False)
    path = tmp_path / "pictures" / "drive.png"
    path.parent.mkdir()
    code, out, _ = _evaluate(capsys, run_dir, "--picture", path)
    first = _episodes(run_dir, 80)[0]
    assert code == 0 and f"picture: {path} (episode seed 1000000, return {float(first['return']):.2f})" in out
    _, model = RunFolder(run_dir).load_model()
    env = gym.make("reengage/DriveSeek-v0")
    obs, _ = env.reset(seed=1_000_000)
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(model.predict(obs, deterministic=True)[0])
        done = terminated or truncated
    with Image.open(path) as picture:
        assert np.array_equal(np.asarray(picture.convert("RGB")), env.unwrapped.draw())
    # only the first episode is drawn, whatever the number evaluated; the picture is not a video's frame
    code, _, _ = _evaluate(capsys, run_dir, "--picture", tmp_path / "again.png", "--episodes", "2")
    assert code == 0
    with Image.open(path) as one, Image.open(tmp_path / "again.png") as two:
        assert np.array_equal(np.asarray(one), np.asarray(two))


def test_bad_evaluate_inputs_exit_2_with_what_to_do(noisy_dense_run, tmp_path, capsys):
    code, _, err = _evaluate(capsys, tmp_path / "nowhere")
    assert code == 2 and "no such folder" in err
    code, _, err = _evaluate(capsys, noisy_dense_run, "--video", tmp_path / "out.avi2")
    assert code == 2 and "valid: .gif" in err
    code, _, err = _evaluate(capsys, noisy_dense_run, "--picture", tmp_path / "episode.jpg")
    assert code == 2 and "'.jpg'; valid: .png" in err and not (tmp_path / "episode.jpg").exists()
    code, _, err = _evaluate(capsys, noisy_dense_run, "--episodes", "0")
    assert code == 2 and "--episodes must be >= 1, got 0" in err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text((noisy_dense_run / "config.yaml").read_text())
    code, _, err = _evaluate(capsys, unfinished)
    assert code == 2 and "--resume" in err and "--checkpoint" in err
    try:
        import imageio_ffmpeg  # noqa: F401
    except ImportError:
        code, _, err = _evaluate(capsys, noisy_dense_run, "--video", tmp_path / "out.mp4")
        assert code == 2 and "pip install -e '.[video]'" in err


def test_checkpoint_of_a_run_can_be_evaluated(noisy_dense_run, capsys):
    code, out, _ = _evaluate(capsys, noisy_dense_run, "--checkpoint", "--episodes", "1")
    assert code == 0 and "(checkpoint, step 150)" in out  # the newest checkpoint, not the end


def test_the_run_folder_records_what_rebuilding_its_environment_needs(noisy_dense_run):
    import yaml

    saved = yaml.safe_load((noisy_dense_run / "config.yaml").read_text())
    assert saved["env_id"] == "reengage/ContinuousSeekDense-v0" and saved["algo"] == "ddpg" and saved["seed"] == 0
    assert saved["env_kwargs"] == {} and saved["observation_noise"]["sigma"] == 0.3
    from reengage.experiment.run_folder import make_run_env
    from reengage.noise_wrapper import SmoothingNoiseWrapper

    assert isinstance(make_run_env(saved), SmoothingNoiseWrapper)


def test_run_logs_hparams_and_per_episode_results(noisy_dense_run):
    events = sorted(noisy_dense_run.glob("events.out.tfevents.*"))
    accumulator = EventAccumulator(str(events[0]))
    accumulator.Reload()
    assert "_hparams_/experiment" in accumulator.PluginTagToContent("hparams")
    with open(noisy_dense_run / "evaluations.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["step"] for row in rows] == ["150", "300"]
    for row in rows:
        returns = [float(episode["return"]) for episode in _episodes(noisy_dense_run, int(row["step"]))]
        assert float(row["eval/mean_return"]) == pytest.approx(np.mean(returns))
        assert float(row["eval/std_return"]) == pytest.approx(np.std(returns))
    saved = hyperparameters({"her": {"n_sampled_goal": 4}, "net_arch": [16], "policy_kwargs": {}, "x": None}, 2)
    assert saved == {"seed": 2, "her.n_sampled_goal": 4, "net_arch": "[16]", "policy_kwargs": "{}", "x": "null"}


class _RandomPolicy:
    def __init__(self, space):
        self.space = space

    def predict(self, obs, deterministic=True):
        return self.space.sample(), None


def test_goal_set_environments_report_return_not_success():
    env = gym.make("reengage/DriveSeek-v0")
    env.action_space.seed(0)
    result = evaluate_goal_policy(_RandomPolicy(env.action_space), env, 2, 0)
    assert not result.reports_success and SUCCESS_EVER not in result.as_scalars()
    assert "eval/mean_return" in result.as_scalars() and "success" not in result.summary()
    assert np.isnan(result.csv_row(0)[SUCCESS_EVER])
    seek = gym.make("reengage/ContinuousSeek5-v0")
    seek.action_space.seed(0)
    assert evaluate_goal_policy(_RandomPolicy(seek.action_space), seek, 2, 0).reports_success


def test_a_long_run_says_so_with_its_estimate(capsys):
    now = [0.0]
    estimate = DurationEstimate(total=1_000_000, learning_starts=100, window=200, clock=lambda: now[0])
    for step in range(1, 400):
        estimate.num_timesteps = step
        now[0] += 0.0 if step <= 100 else 0.05  # 50 ms per training step
        estimate._on_step()
    out = capsys.readouterr().out
    assert estimate.estimate_s == pytest.approx(0.05 * (1_000_000 - 301), rel=1e-6)
    assert "about 13.9 h more" in out and "50.0 ms/step over 200 steps" in out
    assert out.count("note:") == 1

    short = DurationEstimate(total=1000, learning_starts=0, window=200, clock=lambda: now[0])
    for step in range(1, 400):
        short.num_timesteps = step
        now[0] += 0.05
        short._on_step()
    assert short.estimate_s is not None and "note:" not in capsys.readouterr().out


def test_a_video_of_no_episodes_is_refused(noisy_dense_run, tmp_path, capsys):
    code, _, err = _evaluate(capsys, noisy_dense_run, "--video", tmp_path / "v.gif", "--video-episodes", "0")
    assert code == 2 and "--video-episodes must be >= 1, got 0" in err
    assert not (tmp_path / "v.gif").exists()
