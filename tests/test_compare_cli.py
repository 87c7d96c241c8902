"""The older comparison command: bad input exits 2, other settings are never reused, Ctrl-C stops queued runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from reengage.experiment.compare import main as compare_main

ENV = "reengage/ContinuousSeek5-v0"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--env", "nope/X-v0"], "nope/X-v0"),
        (["--env", ENV, "--algo", "foo"], "'foo'"),
        (["--env", ENV, "--alphas", "-1"], "-1"),
        (["--env", ENV, "--workers", "0"], "--workers"),
        (["--env", ENV, "--set", "tau=2"], "tau"),
    ],
)
def test_bad_input_exits_2_naming_the_value(arguments, named, tmp_path, capsys):
    code = compare_main([*arguments, "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2
    assert named in error and "Traceback" not in error
    assert not (tmp_path / "runs").exists()


def test_a_run_with_other_settings_is_refused_not_reused(tmp_path, capsys):
    run_dir = tmp_path / "runs" / ENV.replace("/", "_") / "ddpg_a0_s0"
    run_dir.mkdir(parents=True)
    saved = {"env_id": ENV, "algo": "ddpg", "learning_rate": 0.5, "seed": 0}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(saved))
    code = compare_main(["--env", ENV, "--alphas", "0", "--seeds", "0", "--runs", str(tmp_path / "runs"),
                         "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2
    assert "learning_rate" in error and str(run_dir) in error
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == saved  # untouched
    assert not (tmp_path / "out.md").exists()


@pytest.mark.slow
def test_ctrl_c_stops_queued_runs_promptly(tmp_path):
    command = [sys.executable, "-m", "reengage.experiment.compare", "--env", ENV, "--alphas", "0", "--seeds",
               "0", "1", "2", "3", "--timesteps", "20000", "--workers", "1", "--runs", str(tmp_path / "runs"),
               "--out", str(tmp_path / "out")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    first = tmp_path / "runs" / ENV.replace("/", "_") / "ddpg_a0_s0" / "config.yaml"
    while not first.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert first.exists(), "the first run never started"
    os.killpg(process.pid, signal.SIGINT)
    start = time.monotonic()
    _, error = process.communicate(timeout=60)
    assert process.returncode == 130
    assert time.monotonic() - start < 30
    assert b"resume" in error
    # the queued seeds never started
    assert not (tmp_path / "runs" / ENV.replace("/", "_") / "ddpg_a0_s3").exists()
