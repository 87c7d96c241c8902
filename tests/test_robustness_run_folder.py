"""A model trained with ``observation_noise`` certifies directly from its run folder (its recorded
environment): env, noise wrapper, algorithm and smoothing settings all come from the folder."""

import json

import pytest

from reengage.certify import main
from reengage.experiment.build import agent_class
from reengage.experiment.config import resolve_config
from reengage.experiment.runner import train_run

NOISE = "observation_noise={kind: gaussian, sigma: 0.1, keys: [observation]}"


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    """DDPG + HER on ContinuousSeek5 under Gaussian observation noise, 200 steps (HER needs an env to load, and the
    noise wrapper's unbounded Box differs from the raw env's [-5, 5] box)."""
    run_dir = tmp_path_factory.mktemp("runs") / "noisy"
    config = resolve_config(
        "reengage/ContinuousSeek5-v0",
        "ddpg",
        0.2,
        200,
        [NOISE, "learning_starts=100", "eval_freq=1000", "eval_episodes=1", "buffer_size=1000", "net_arch=[16]"],
    )
    assert config["her"]  # the case that needs an env to load
    train_run(config, seed=0, logdir=run_dir, progress=False)
    return run_dir


def test_certify_from_run_folder(noisy_run, tmp_path):
    out = tmp_path / "out"
    code = main(
        [
            "--run",
            str(noisy_run),
            "--states",
            "2",
            "--n",
            "300",
            "--eps",
            "0.02",
            "--attack-steps",
            "2",
            "--attack-n",
            "200",
            "--episodes",
            "10",
            "--budgets",
            "0,0.1",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["env"] == "reengage/ContinuousSeek5-v0" and rep["run"] == str(noisy_run)
    import yaml

    saved = yaml.safe_load((noisy_run / "config.yaml").read_text())
    assert rep["algorithm"] == agent_class(saved).__name__  # the class train.py built (fast path by default)
    assert rep["smoothing"]["sigma"] == 0.1 and rep["smoothing"]["keys"] == ["observation"]
    assert rep["per_state"]["kind"] == "continuous_l2" and len(rep["per_state"]["radii"]) == 2
    assert rep["episode"]["return_range"] == [-10.0, 0.0] and "declared" in rep["episode"]["return_range_source"]


def test_run_folder_refusals(noisy_run, tmp_path, capsys):
    code = main(["--run", str(noisy_run), "--env", "reengage/ContinuousSeekDense-v0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--force" in err and "reengage/ContinuousSeek5-v0" in err
    code = main(["--run", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "config.yaml" in err
    code = main(["--out", str(tmp_path / "o")])
    assert code == 2 and "--run DIR" in capsys.readouterr().err
