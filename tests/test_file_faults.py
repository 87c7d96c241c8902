"""File-system faults end cleanly: exit code 2 (permissions, a read-only file system, a name too long) or 1 (a
full disk), one line on stderr saying what failed and how to go on, no traceback, the last complete checkpoint
kept, and nothing created outside the paths given.

Faults are made with ``tools/inject_fault.py`` (an audit hook in the command's own process that makes matching
writes raise the kernel's ``OSError``): the tests run as root, whom ``chmod a-w`` does not stop, and a read-only
or full file system cannot be mounted without privileges. A name too long and a missing folder are real.
"""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reengage.experiment.config import resolve_config
from reengage.experiment.runner import train_run
from reengage.file_faults import describe_fault, fault_exit_code, make_folders

ROOT = Path(__file__).resolve().parents[1]
INJECT = str(ROOT / "tools" / "inject_fault.py")
TINY = [
    "--no-progress",
    "--set",
    "net_arch=[16,16]",
    "--set",
    "batch_size=32",
    "--set",
    "learning_starts=50",
    "--set",
    "buffer_size=2000",
    "--set",
    "eval_episodes=2",
    "--set",
    "eval_freq=300",
]
RUN = ["--timesteps", "600", "--checkpoint-every", "200", *TINY]


def _command(*argv, fault=()):
    prefix = [INJECT, *fault, "--"] if fault else []
    return subprocess.run(
        [sys.executable, *prefix, *map(str, argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _one_line(result, code, *fragments):
    message = result.stderr.strip()
    assert result.returncode == code, message[-3000:]
    assert "Traceback" not in message and len(message.splitlines()) == 1, message[-3000:]
    for fragment in fragments:
        assert fragment in message, message
    return message


def _checkpoint_step(run_dir):
    return json.loads((run_dir / "checkpoint" / "manifest.json").read_text())["step"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run trained under smoothing noise (for evaluate and certify)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    config = resolve_config(
        "reengage/ContinuousSeek5-v0",
        "ddpg",
        0.2,
        200,
        [
            "net_arch=[16,16]",
            "batch_size=32",
            "learning_starts=50",
            "buffer_size=2000",
            "eval_episodes=2",
            "eval_freq=200",
            "observation_noise={kind: gaussian, sigma: 0.1}",
        ],
    )
    train_run(config, 0, run_dir, progress=False, verbose=False)
    return run_dir


# -- the messages and exit codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number, code, remedy",
    [
        (errno.EACCES, 2, "change the folder's permissions"),
        (errno.EROFS, 2, "read-only: choose a path on a writable one"),
        (errno.ENAMETOOLONG, 2, "choose a shorter one"),
        (errno.ENOSPC, 1, "the disk is full: free some space"),
        (errno.EIO, 1, "check the disk"),
    ],
)
def test_each_fault_has_its_exit_code_and_remedy(number, code, remedy):
    fault = OSError(number, os.strerror(number), "/data/run/" + "x" * 300)
    assert fault_exit_code(fault) == code
    message = describe_fault(fault)
    assert remedy in message and os.strerror(number) in message
    assert "x" * 100 not in message and "(300 bytes)" in message  # a name too long is shortened


def test_folders_made_for_a_path_that_fails_are_removed(tmp_path, monkeypatch):
    made = make_folders(tmp_path / "a" / "b")
    assert made == [tmp_path / "a", tmp_path / "a" / "b"] and (tmp_path / "a" / "b").is_dir()
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self.name == "z":
            raise OSError(errno.ENOSPC, "No space left on device", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(OSError):
        make_folders(tmp_path / "x" / "y" / "z")
    assert not (tmp_path / "x").exists()


# -- train.py ----------------------------------------------------------------------------------------------


def test_a_read_only_parent_exits_2_and_creates_nothing(tmp_path):
    result = _command(
        "train.py", *RUN, "--logdir", tmp_path / "ro" / "run", fault=["--errno", "EACCES", "--path", f"{tmp_path}/ro/*"]
    )
    _one_line(
        result, 2, f"{tmp_path}/ro/run: Permission denied", "change the folder's permissions", "nothing was written"
    )
    assert not (tmp_path / "ro" / "run").exists()


def test_a_name_too_long_exits_2_and_creates_no_parent(tmp_path):
    result = _command("train.py", *RUN, "--logdir", tmp_path / "new" / ("n" * 300) / "run")
    _one_line(result, 2, "File name too long", "choose a shorter one")
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_a_full_disk_at_a_later_checkpoint_keeps_the_previous_one_then_resume_finishes(tmp_path):
    run_dir = tmp_path / "run"
    # the step-200 checkpoint's state.pkl is written and synced (two opens); the step-400 one fails
    result = _command(
        "train.py",
        *RUN,
        "--logdir",
        run_dir,
        fault=["--errno", "ENOSPC", "--path", "*/checkpoint.tmp/state.pkl", "--skip", "2"],
    )
    _one_line(
        result,
        1,
        "checkpoint.tmp/state.pkl: No space left on device",
        "the disk is full",
        "the newest complete checkpoint (step 200) is kept",
        f"continue with: python train.py --logdir {run_dir} --resume",
    )
    assert _checkpoint_step(run_dir) == 200 and not (run_dir / "checkpoint.tmp").exists()
    resumed = _command("train.py", "--logdir", run_dir, "--resume", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run_dir / "model.zip").exists()


def test_a_checkpoint_folder_made_unwritable_mid_run_exits_2(tmp_path):
    run_dir = tmp_path / "run"
    result = _command(
        "train.py", *RUN, "--logdir", run_dir, fault=["--errno", "EACCES", "--path", "*/checkpoint.tmp", "--skip", "1"]
    )
    _one_line(result, 2, "checkpoint.tmp: Permission denied", "(step 200) is kept")
    assert _checkpoint_step(run_dir) == 200


def test_a_stop_whose_checkpoint_cannot_be_written_says_so_and_keeps_the_previous_one(tmp_path):
    run_dir = tmp_path / "run"
    # Ctrl-C while the step-300 evaluation is written: the stop's checkpoint (the second) finds the disk full
    result = _command(
        "train.py",
        *RUN,
        "--logdir",
        run_dir,
        fault=[
            "--errno",
            "ENOSPC",
            "--path",
            "*/checkpoint.tmp",
            "--skip",
            "1",
            "--sigint-on",
            "*/evaluations.csv.tmp",
        ],
    )
    _one_line(
        result,
        130,
        "SIGINT at step 300: the checkpoint could not be written",
        "No space left on device",
        "the newest complete checkpoint (step 200) is kept",
        f"continue with: python train.py --logdir {run_dir} --resume",
    )
    assert _checkpoint_step(run_dir) == 200


# -- evaluate, certify, the experiment runner ---------------------------------------------------------------


def test_a_video_in_a_missing_folder_is_refused_and_the_folder_not_created(finished_run, tmp_path, capsys):
    from reengage.evaluate import main

    missing = tmp_path / "missing"
    assert main([str(finished_run), "--video", str(missing / "x.gif")]) == 2
    err = capsys.readouterr().err
    assert f"the folder {missing} does not exist; create it first" in err
    assert not missing.exists()


def test_a_video_in_an_unwritable_folder_exits_2_and_leaves_no_file(finished_run, tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    result = _command(
        "-m",
        "reengage.evaluate",
        finished_run,
        "--video",
        folder / "x.gif",
        fault=["--errno", "EACCES", "--path", f"{folder}/*"],
    )
    _one_line(result, 2, f"{folder}/x.gif: Permission denied")
    assert list(folder.iterdir()) == []


def test_certify_out_on_a_full_disk_exits_1(finished_run, tmp_path):
    out = tmp_path / "cert"
    result = _command(
        "-m",
        "reengage.certify",
        "--run",
        finished_run,
        "--states",
        "2",
        "--n0",
        "10",
        "--n",
        "20",
        "--episodes",
        "2",
        "--out",
        out,
        fault=["--errno", "ENOSPC", "--path", f"{out}/*.json"],
    )
    _one_line(result, 1, "report.json: No space left on device", "the report was not written")


def test_certify_out_in_a_read_only_folder_exits_2_and_creates_nothing(finished_run, tmp_path):
    out = tmp_path / "ro" / "cert"
    result = _command(
        "-m",
        "reengage.certify",
        "--run",
        finished_run,
        "--out",
        out,
        fault=["--errno", "EACCES", "--path", f"{tmp_path}/ro*"],
    )
    _one_line(result, 2, f"{tmp_path}/ro: Permission denied")
    assert not (tmp_path / "ro").exists()


def test_report_out_that_cannot_be_written_exits_2_with_one_line(tmp_path):
    out = tmp_path / "ro" / "report"
    result = _command(
        "-m",
        "reengage.experiment",
        "report",
        ROOT / "results" / "fig8_2_reduced",
        "--reps",
        "10",
        "--out",
        out,
        fault=["--errno", "EACCES", "--path", f"{tmp_path}/ro*"],
    )
    _one_line(result, 2, "Permission denied", "the report was not written in full")
    assert not (tmp_path / "ro").exists()


def test_a_grid_whose_results_folder_cannot_be_made_exits_2_with_one_line(tmp_path):
    result = _command(
        "-m",
        "reengage.experiment",
        "run",
        ROOT / "configs" / "experiments" / "smoke.yaml",
        "--results",
        tmp_path / "ro" / "smoke",
        fault=["--errno", "EROFS", "--path", f"{tmp_path}/ro*"],
    )
    _one_line(result, 2, "Read-only file system")
    assert not (tmp_path / "ro").exists()


def test_a_write_that_fails_part_way_names_its_file(tmp_path, monkeypatch):
    # a full disk fails a write() after the open succeeded: the OSError names no file, the message must
    from reengage.experiment import run_folder

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_folder.csv, "DictWriter", full)
    with pytest.raises(OSError) as raised:
        run_folder.write_csv(tmp_path / "evaluations.csv", [{"step": 1}])
    assert raised.value.filename == str(tmp_path / "evaluations.csv")
    assert describe_fault(raised.value).startswith(f"{tmp_path / 'evaluations.csv'}: No space left on device")
    assert list(tmp_path.iterdir()) == []  # the half-written copy is gone


def test_every_experiment_subcommand_says_how_to_go_on_after_a_fault():
    # a subcommand without its remedy line turned a file-system fault into a KeyError traceback
    import argparse

    from reengage.experiment.__main__ import _AFTER_FAULT, build_parser

    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(subparsers.choices) == set(_AFTER_FAULT)


def test_tune_into_a_path_that_cannot_be_made_exits_2_with_one_line():
    # /proc refuses new folders even to root: a real fault, not a simulated one
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "reengage.experiment",
            "tune",
            "configs/experiments/tune_continuous_seek.yaml",
            "--results",
            "/proc/reengage-no-such-folder/study",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    # the results folder is made before the study's banner: the fault is the only line
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    last = result.stderr.strip()
    assert last.startswith("python -m reengage.experiment: error: /proc/reengage-no-such-folder: No such file")
    assert "finished trials are kept in the study" in last
