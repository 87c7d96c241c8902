"""Real signals sent to real train.py processes: SIGINT and SIGTERM save a checkpoint and print how to
resume; SIGKILL at different moments (before the first checkpoint, while the first checkpoint is
written, while a later one is written) never leaves a folder that cannot be continued or restarted."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
import torch

from reengage.experiment.build import agent_class
from reengage.experiment.checkpoint import read_manifest
from reengage.experiment.config import resolve_config
from reengage.experiment.runner import train_run

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "net_arch=[16,16]",
    "batch_size=32",
    "learning_starts=50",
    "eval_episodes=3",
    "buffer_size=2000",
    "eval_freq=300",
]
TIMESTEPS = 600
RESUME_LINE = "continue with: python train.py --logdir {} --resume"


def _argv(logdir, timesteps=TIMESTEPS, settings=TINY, checkpoint_every=200):
    sets = [part for assignment in settings for part in ("--set", assignment)]
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "--env",
        "reengage/ContinuousSeek5-v0",
        "--algo",
        "ddpg",
        "--alpha",
        "0.2",
        "--seed",
        "3",
        "--timesteps",
        str(timesteps),
        "--logdir",
        str(logdir),
        "--checkpoint-every",
        str(checkpoint_every),
        "--no-progress",
        *sets,
    ]


def _start(logdir, **kwargs):
    logdir.parent.mkdir(parents=True, exist_ok=True)
    err = open(logdir.parent / f"{logdir.name}.stderr", "w")
    process = subprocess.Popen(
        _argv(logdir, **kwargs),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=err,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    return process, logdir.parent / f"{logdir.name}.stderr"


def _wait_until(condition, process, what, timeout=300.0, poll=0.005):
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def _run(argv):
    return subprocess.run(
        argv, cwd=ROOT, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run's parameters and evaluations (in-process: the same code, seeds and threads)."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    config = resolve_config("reengage/ContinuousSeek5-v0", "ddpg", 0.2, TIMESTEPS, TINY + ["checkpoint_every=200"])
    train_run(config, 3, run_dir, progress=False, verbose=False)
    return config, _parameters(run_dir, config), (run_dir / "evaluations.csv").read_text()


def _parameters(run_dir, config):
    env = gym.make(config["env_id"], **config["env_kwargs"])
    return agent_class(config).load(run_dir / "model.zip", env=env).policy.state_dict()


def _assert_same_as_reference(run_dir, reference):
    config, parameters, evaluations = reference
    resumed = _parameters(run_dir, config)
    assert all(torch.equal(parameters[name], resumed[name]) for name in parameters)
    assert (run_dir / "evaluations.csv").read_text() == evaluations


def _checkpoint_step(run_dir):
    manifest = read_manifest(run_dir / "checkpoint")
    return None if manifest is None else manifest["step"]


@pytest.mark.parametrize("signal_number", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_signal_mid_run_saves_a_checkpoint_then_resume_gives_the_uninterrupted_result(
    tmp_path, reference, signal_number
):
    run_dir = tmp_path / "run"
    process, stderr = _start(run_dir)
    _wait_until(lambda: _checkpoint_step(run_dir) == 200, process, "the step-200 checkpoint")
    process.send_signal(signal_number)
    assert process.wait(timeout=300) == 128 + signal_number
    message = stderr.read_text().strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    name = signal.Signals(signal_number).name
    step = _checkpoint_step(run_dir)
    assert message == (
        f"train.py: {name} at step {step}: checkpoint saved in {run_dir / 'checkpoint'}; " + RESUME_LINE.format(run_dir)
    )
    assert 200 < step < TIMESTEPS and not (run_dir / "model.zip").exists()

    result = _run([sys.executable, str(ROOT / "train.py"), "--logdir", str(run_dir), "--resume", "--no-progress"])
    assert result.returncode == 0, result.stderr
    segments = json.loads((run_dir / "segments.json").read_text())
    assert [(s["start"], s["resumed"]) for s in segments] == [(0, False), (step, True)]
    _assert_same_as_reference(run_dir, reference)


@pytest.mark.slow
def test_sigint_before_the_first_checkpoint_saves_one(tmp_path, reference):
    run_dir = tmp_path / "run"
    process, stderr = _start(run_dir)
    _wait_until(lambda: (run_dir / "config.yaml").exists(), process, "the run's start")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=300) == 130
    assert "Traceback" not in stderr.read_text() and RESUME_LINE.format(run_dir) in stderr.read_text()
    assert _checkpoint_step(run_dir) < 200
    result = _run([sys.executable, str(ROOT / "train.py"), "--logdir", str(run_dir), "--resume", "--no-progress"])
    assert result.returncode == 0, result.stderr
    _assert_same_as_reference(run_dir, reference)


@pytest.mark.slow
def test_sigkill_before_the_first_checkpoint_then_restart(tmp_path, reference):
    run_dir = tmp_path / "run"
    # no periodic checkpoint: on a quiet machine step 200 came within the half second before the kill
    process, _ = _start(run_dir, checkpoint_every=0)
    _wait_until(lambda: (run_dir / "config.yaml").exists(), process, "the run's start")
    time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not (run_dir / "checkpoint").exists() and (run_dir / "config.yaml").exists()
    for argv in (_argv(run_dir), [sys.executable, str(ROOT / "train.py"), "--logdir", str(run_dir), "--resume"]):
        result = _run(argv)
        assert result.returncode == 2 and "never reached a checkpoint" in result.stderr
        assert "--restart" in result.stderr and "Traceback" not in result.stderr
    result = _run(_argv(run_dir) + ["--restart"])
    assert result.returncode == 0, result.stderr
    _assert_same_as_reference(run_dir, reference)


# a replay buffer of 10^6 transitions makes each checkpoint write take long enough to be interrupted
BIG_BUFFER = [setting for setting in TINY if not setting.startswith("buffer_size")] + ["buffer_size=1000000"]


@pytest.mark.slow
def test_sigkill_during_the_first_checkpoint_write(tmp_path):
    run_dir = tmp_path / "run"
    process, _ = _start(run_dir, settings=BIG_BUFFER)
    _wait_until(lambda: (run_dir / "checkpoint.tmp" / "model.zip").exists(), process, "the first checkpoint write")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert not (run_dir / "checkpoint").exists(), "the kill came after the write: the test did not test it"
    assert not (run_dir / "checkpoint.tmp" / "manifest.json").exists()
    result = _run([sys.executable, str(ROOT / "train.py"), "--logdir", str(run_dir), "--resume"])
    assert result.returncode == 2 and "first checkpoint write was cut short" in result.stderr
    assert "--restart" in result.stderr and "Traceback" not in result.stderr
    result = _run(_argv(run_dir, settings=BIG_BUFFER, checkpoint_every=0) + ["--restart"])
    assert result.returncode == 0, result.stderr
    assert (run_dir / "model.zip").exists() and not (run_dir / "checkpoint.tmp").exists()
    assert [row.split(",")[0] for row in (run_dir / "evaluations.csv").read_text().splitlines()[1:]] == ["300", "600"]


@pytest.mark.slow
def test_sigkill_during_a_later_checkpoint_write_keeps_the_previous_one(tmp_path):
    run_dir = tmp_path / "run"
    process, _ = _start(run_dir, settings=BIG_BUFFER)
    _wait_until(lambda: _checkpoint_step(run_dir) == 200, process, "the step-200 checkpoint", poll=0.05)
    before = (run_dir / "checkpoint" / "manifest.json").read_text()
    _wait_until(lambda: (run_dir / "checkpoint.tmp" / "model.zip").exists(), process, "the second checkpoint write")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert (run_dir / "checkpoint" / "manifest.json").read_text() == before
    result = _run([sys.executable, str(ROOT / "train.py"), "--logdir", str(run_dir), "--resume", "--no-progress"])
    assert result.returncode == 0, result.stderr
    segments = json.loads((run_dir / "segments.json").read_text())
    assert [(s["start"], s["resumed"]) for s in segments] == [(0, False), (200, True)]


def _assert_one_line_exit_130(process, stderr):
    assert process.wait(timeout=300) == 130
    message = stderr.read_text().strip()
    assert "Traceback" not in message and "Exception ignored" not in message, message
    assert len(message.splitlines()) == 1 and message.startswith("train.py: "), message
    return message


def test_a_second_sigint_stops_at_once_with_one_line(tmp_path):
    # two signals sent back to back may reach Python as one: either way the exit is 130 with one line
    run_dir = tmp_path / "run"
    process, stderr = _start(run_dir)
    _wait_until(lambda: (run_dir / "config.yaml").exists(), process, "the run's start")
    process.send_signal(signal.SIGINT)
    process.send_signal(signal.SIGINT)
    _assert_one_line_exit_130(process, stderr)


def test_repeated_sigints_while_stopping_keep_exit_130_and_one_line(tmp_path):
    # an impatient user: Ctrl-C every few milliseconds until the process is gone, so some arrive while the
    # checkpoint is written, some after it, while the interpreter shuts down (this once gave exit -2 or 1
    # and a traceback from a torch shutdown hook)
    run_dir = tmp_path / "run"
    process, stderr = _start(run_dir)
    _wait_until(lambda: (run_dir / "config.yaml").exists(), process, "the run's start")
    while process.poll() is None:
        process.send_signal(signal.SIGINT)
        time.sleep(0.003)
    _assert_one_line_exit_130(process, stderr)


def test_a_second_sigint_during_the_stop_checkpoint_write_stops_at_once(tmp_path):
    run_dir = tmp_path / "run"
    process, stderr = _start(run_dir, settings=BIG_BUFFER)
    _wait_until(lambda: _checkpoint_step(run_dir) == 200, process, "the step-200 checkpoint", poll=0.05)
    process.send_signal(signal.SIGINT)
    _wait_until(lambda: (run_dir / "checkpoint.tmp" / "model.zip").exists(), process, "the stop's checkpoint write")
    process.send_signal(signal.SIGINT)
    message = _assert_one_line_exit_130(process, stderr)
    assert _checkpoint_step(run_dir) == 200, "the write ended before the second signal: the test did not test it"
    assert message.startswith("train.py: stopped at once"), message
    result = _run([sys.executable, str(ROOT / "train.py"), "--logdir", str(run_dir), "--resume", "--no-progress"])
    assert result.returncode == 0, result.stderr


def test_a_signal_the_process_ignores_stays_ignored():
    # a grid worker ignores SIGINT (the driver alone answers Ctrl-C); nohup and `&` set ignores too
    from reengage.experiment.runner import StopRequest

    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopRequest() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handle
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_stop_at_once_that_surfaces_as_another_error_is_still_a_stop_at_once(tmp_path, monkeypatch):
    # torch's zip writer, cut by the second signal's KeyboardInterrupt, raises RuntimeError from its cleanup;
    # the run must still end as the user's stop-at-once (exit 130), never as a failed run with a traceback
    import reengage.experiment.runner as runner

    def interrupted_write(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C: a checkpoint, then stop
            os.kill(os.getpid(), signal.SIGINT)  # the second, while that checkpoint is written
            time.sleep(1.0)
        except KeyboardInterrupt:
            raise RuntimeError("unexpected pos 8189 vs 8144")  # noqa: B904 (the KeyboardInterrupt stays its implicit context, as in torch)
        raise AssertionError("the second signal did not interrupt the write")

    monkeypatch.setattr(runner, "save_checkpoint", interrupted_write)
    config = resolve_config("reengage/ContinuousSeek5-v0", "ddpg", 0.2, TIMESTEPS, TINY + ["checkpoint_every=200"])
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt) as stopped:
            train_run(config, 3, tmp_path / "run", progress=False, verbose=False)
        assert isinstance(stopped.value.__cause__, RuntimeError)
        # the stop at once leaves further stop signals ignored: the process is on its way out
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def test_train_py_reports_an_error_raised_by_the_second_sigint_as_the_stop_at_once(monkeypatch, capsys):
    # a second Ctrl-C inside tqdm's lock creation once ended in an AttributeError from tqdm's cleanup, outside
    # the training loop: any error with the KeyboardInterrupt in its chain is the user's stop-at-once
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_script", ROOT / "train.py")
    train_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_script)

    def stopped_inside_a_library(argv):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise AttributeError("type object 'tqdm_asyncio' has no attribute '_lock'")  # noqa: B904 (a library cleanup failing, as tqdm's does)

    def a_real_bug(argv):
        raise AttributeError("a bug of the code, not a stop")

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        monkeypatch.setattr(train_script, "_main", stopped_inside_a_library)
        assert train_script.main([]) == 130
        assert capsys.readouterr().err.startswith("train.py: stopped at once")
        monkeypatch.setattr(train_script, "_main", a_real_bug)
        with pytest.raises(AttributeError, match="a bug of the code"):
            train_script.main([])
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
