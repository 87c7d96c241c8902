"""The run folder: the one place the names of a training run's files are defined, and reading a run back.

A run folder (``train.py --logdir DIR``, or ``results/<experiment>/runs/<run id>/``) holds::

    config.yaml              the resolved configuration and the seed: what --resume continues
    evaluations.csv          one row per evaluation
    episodes.csv             one row per evaluation episode
    segments.json            the steps each process trained, written when the run finishes
    model.zip                the final model (written as model.partial.zip, then renamed)
    model.smoothing.json     the smoothing settings of a run trained with observation_noise
    checkpoint/              the newest checkpoint (its format, and its .tmp and .prev siblings:
                             reengage.experiment.checkpoint)
    events.out.tfevents.*    TensorBoard
    run.json, status.json    written by the experiment runner: the run's identity and its outcome
    .lock                    the owner's pid and command: one process at a time trains a folder
                             (:func:`own_run_folder`)

A finished run is one whose ``status.json`` says done and that has its ``evaluations.csv``: the files of
:data:`RECORD_FILES`, a few kilobytes, are all a report reads, so a clone of a results repository without
models or checkpoints still counts its runs as finished.

Reading a run (its configuration, status, model and environment) goes through :class:`RunFolder`: train.py,
the experiment runner, ``python -m reengage.evaluate``, ``python -m reengage.certify --run``, and the
experiment runner's report, reevaluate and scalars commands. What may be done with a folder (start, resume,
extend, restart) is decided in :mod:`reengage.experiment.resume`.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reengage.file_faults import make_folders, remove_made_folders, with_path
from reengage.observation_noise import SIDECAR_SUFFIX, sidecar_path

CONFIG_FILE = "config.yaml"
EVALUATIONS_FILE = "evaluations.csv"
EPISODES_FILE = "episodes.csv"
SEGMENTS_FILE = "segments.json"
MODEL_FILE = "model.zip"
PARTIAL_MODEL_FILE = "model.partial.zip"
SMOOTHING_FILE = sidecar_path(MODEL_FILE).name  # the sidecar certify reads next to any model
CHECKPOINT_DIR = "checkpoint"
EVENTS_GLOB = "events.out.tfevents.*"
RUN_FILE = "run.json"
STATUS_FILE = "status.json"
LOCK_FILE = ".lock"

# a finished run's compact record: what the report reads, kilobytes per run (never the model, the
# checkpoints, the replay buffer or the TensorBoard events)
RECORD_FILES = (RUN_FILE, CONFIG_FILE, EVALUATIONS_FILE, EPISODES_FILE, SEGMENTS_FILE, STATUS_FILE)

# the outcomes status.json records
DONE = "done"
FAILED = "failed"
INTERRUPTED = "interrupted"
# a tuning study's pruner stopped the run (python -m reengage.experiment tune): never resumed
PRUNED = "pruned"
# what a grid worker reports for a folder another live process owns; never written to status.json
BUSY = "busy"

# what a run writes into its folder besides checkpoints: --restart removes these and nothing else
_RUN_FILES = (CONFIG_FILE, EVALUATIONS_FILE, EPISODES_FILE, MODEL_FILE, SEGMENTS_FILE)
_RUN_PATTERNS = (EVENTS_GLOB, MODEL_FILE + ".*", "*" + SIDECAR_SUFFIX)
# a checkpoint folder name older versions used while replacing a checkpoint
_OLD_CHECKPOINT_DIR = CHECKPOINT_DIR + ".old"
# files that starting a run over keeps: the runner's identity of the run, and the lock of the process doing
# the restart (deleting a held lock file would let a third process lock a new file of the same name)
KEPT_ON_RESTART = (RUN_FILE, LOCK_FILE)


class NoRunError(ValueError):
    """The folder holds no run (it is missing, or has no configuration)."""


class UnreadableRunError(ValueError):
    """The folder's configuration cannot be read as a run's."""


class RunFolderBusy(ValueError):
    """Another live process owns the run folder; nothing in the folder was changed.

    A ValueError, like every refused start: ``train.py`` prints the one-line message and exits 2.
    """

    def __init__(self, path: Path, owner_pid: int | None, owner_command: str | None) -> None:
        self.path, self.owner_pid, self.owner_command = Path(path), owner_pid, owner_command
        if owner_pid is None:
            who, stop = "another process", "stop it"
        else:
            who = f"process {owner_pid}" + (f" ({owner_command})" if owner_command else "")
            stop = f"stop it with 'kill {owner_pid}' (it saves a checkpoint; then continue with --resume)"
        super().__init__(f"{self.path} is being trained by {who}; wait for it to finish, or {stop}")


# the folders this process owns: resolved path -> (lock file descriptor, nesting depth). A grid worker takes
# the lock before it prepares the folder and train_run takes it again: flock conflicts between two open file
# descriptions even in one process, so the second taking must reuse the first.
_OWNED: dict[Path, list[int]] = {}


def _read_owner(handle: int) -> tuple[int | None, str | None]:
    """The pid and command the lock file's owner wrote, ``(None, None)`` when it wrote nothing readable yet."""
    try:
        os.lseek(handle, 0, os.SEEK_SET)
        owner = json.loads(os.read(handle, 65536).decode() or "null")
        return int(owner["pid"]), str(owner.get("command") or "") or None
    except (OSError, ValueError, TypeError, KeyError):
        return None, None


@contextmanager
def own_run_folder(path: str | Path, create: bool = True) -> Iterator[None]:
    """Own the run folder ``path`` for the duration of the block, or raise :class:`RunFolderBusy`.

    The lock is an advisory ``flock`` on ``path/.lock``, which holds the owner's pid and command for the
    message another process gets. The kernel drops a flock when its process dies (crash, SIGKILL, the
    out-of-memory killer), so a dead owner's lock is never stale: the next process takes the folder over
    without anyone deleting anything. ``create`` makes the folder when it is missing; without it a missing
    folder is left missing and not locked (a resume of it is refused before anything is written). Taking a
    folder this process already owns nests. A process forked while holding the lock shares it until it
    exits (sub-process environments end with the run, so this lasts no longer than the run).
    """
    path = Path(path)
    made: list[Path] = []
    if not path.is_dir():
        if not create:
            yield
            return
        made = make_folders(path)
    key = path.resolve()
    if key in _OWNED:
        _OWNED[key][1] += 1
        try:
            yield
        finally:
            _OWNED[key][1] -= 1
        return
    # opened without truncation: a process that fails to take the lock must not erase the owner's pid
    try:
        handle = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        remove_made_folders(made)  # a folder that cannot hold its lock is not left behind
        raise
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise RunFolderBusy(path, *_read_owner(handle)) from None
        os.ftruncate(handle, 0)
        os.lseek(handle, 0, os.SEEK_SET)
        os.write(handle, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv)}).encode())
        _OWNED[key] = [handle, 1]
        try:
            yield
        except ValueError:
            # a start refused after the folder was made for it (stable-baselines3 refusing a combination of
            # settings) leaves nothing behind, so the corrected command starts as if this one had not run
            if made and [entry.name for entry in path.iterdir()] == [LOCK_FILE]:
                (path / LOCK_FILE).unlink()
                remove_made_folders(made)
            raise
        finally:
            del _OWNED[key]
    finally:
        # closing the last descriptor releases the lock; the file stays (unlinking it would race with a
        # process that has opened it and is about to lock it)
        os.close(handle)


def check_logdir_path(path: Path, option: str = "--logdir") -> None:
    """Refuse a folder argument (a run folder, a results or report folder) that is a file, or lies under one.

    ``option`` names the argument in the message (``--logdir``, ``--results``, ``--out``).
    """
    path = Path(path)
    for candidate in [path, *path.parents]:
        if candidate.exists() and not candidate.is_dir():
            where = "is a file" if candidate == path else f"lies under {candidate}, which is a file"
            raise ValueError(f"{option} {path} {where}; give a folder path")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``path`` from ``rows`` (through a temporary file, so a kill never leaves half a file)."""
    if not rows:
        return
    staging = path.with_name(path.name + ".tmp")
    try:
        with open(staging, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        staging.replace(path)
    except OSError as error:
        staging.unlink(missing_ok=True)  # a full disk: the half-written copy goes, the last complete file stays
        raise with_path(error, path) from None


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` then rename: a reader (the grid's driver, the report) never sees half a file."""
    staging = path.with_name(path.name + ".tmp")
    try:
        staging.write_text(json.dumps(payload, indent=1, default=repr))
        staging.replace(path)
    except OSError as error:
        staging.unlink(missing_ok=True)
        raise with_path(error, path) from None


@dataclass(frozen=True)
class RunFolder:
    """One run's folder: where each of its files is, and reading and writing them."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # -- where the files are ------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def evaluations_file(self) -> Path:
        return self.path / EVALUATIONS_FILE

    @property
    def episodes_file(self) -> Path:
        return self.path / EPISODES_FILE

    @property
    def segments_file(self) -> Path:
        return self.path / SEGMENTS_FILE

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def smoothing_file(self) -> Path:
        return self.path / SMOOTHING_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def run_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def status_file(self) -> Path:
        return self.path / STATUS_FILE

    # -- reading ------------------------------------------------------------------------------
    def load_config_file(self) -> Any:
        """``config.yaml`` as YAML reads it, ``None`` when there is none; UnreadableRunError if it is not YAML."""
        if not self.config_file.is_file():
            return None
        try:
            return yaml.safe_load(self.config_file.read_text())
        except yaml.YAMLError as error:
            raise UnreadableRunError(f"{self.config_file} is not readable YAML ({error})") from None
        except UnicodeDecodeError:
            raise UnreadableRunError(f"{self.config_file} is not text (a binary or damaged file)") from None

    def read_config(self) -> dict[str, Any]:
        """The run's saved configuration (``env_id``, ``env_kwargs``, ``observation_noise``, ``algo``, ``seed``
        and every other key); NoRunError or UnreadableRunError, each naming the folder or the file."""
        if not self.path.is_dir():
            what = "it is a file" if self.path.exists() else "no such folder"
            raise NoRunError(f"{self.path} is not a run folder ({what})")
        saved = self.load_config_file()
        if saved is None and not self.config_file.is_file():
            raise NoRunError(f"no run in {self.path} ({CONFIG_FILE} is missing)")
        if not isinstance(saved, dict) or "env_id" not in saved:
            raise UnreadableRunError(f"{self.config_file} does not hold a run configuration")
        return saved

    def holds_run(self) -> bool:
        """Whether the folder holds a readable run configuration."""
        try:
            self.read_config()
        except ValueError:
            return False
        return True

    @property
    def env_id(self) -> str:
        return str(self.read_config()["env_id"])

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return dict(self.read_config().get("env_kwargs") or {})

    @property
    def observation_noise(self) -> dict[str, Any] | None:
        noise = self.read_config().get("observation_noise")
        return dict(noise) if noise else None

    def read_status(self) -> dict[str, Any] | None:
        """``status.json``, or None when it is missing or cut short."""
        try:
            return json.loads(self.status_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_finished(self) -> bool:
        """Whether the folder holds a finished run: ``status.json`` says done and ``evaluations.csv`` is there.

        The model and checkpoints are not required: a finished run's compact record (:data:`RECORD_FILES`,
        committed to a repository) counts as finished, so a fresh clone of the results skips it instead of
        training it again.
        """
        status = self.read_status()
        return bool(status and status.get("status") == DONE and self.evaluations_file.exists())

    def finished_step(self) -> int | None:
        """The step of ``model.zip`` when the run completed (from ``segments.json``), else None."""
        if not (self.model_file.exists() and self.segments_file.exists()):
            return None
        try:
            segments = json.loads(self.segments_file.read_text())
            return int(segments[-1]["end"]) if segments and "end" in segments[-1] else None
        except (ValueError, KeyError, TypeError, IndexError):
            return None

    # -- writing ------------------------------------------------------------------------------
    def write_config(self, record: dict[str, Any]) -> None:
        with open(self.config_file, "w") as handle:
            yaml.safe_dump(record, handle, sort_keys=True)

    def write_evaluations(self, rows: list[dict[str, Any]]) -> None:
        write_csv(self.evaluations_file, rows)

    def write_episodes(self, rows: list[dict[str, Any]]) -> None:
        write_csv(self.episodes_file, rows)

    def write_segments(self, segments: list[dict[str, Any]]) -> None:
        self.segments_file.write_text(json.dumps(segments, indent=1))

    def write_identity(self, identity: dict[str, Any]) -> None:
        write_json(self.run_file, identity)

    def write_status(self, outcome: dict[str, Any]) -> None:
        write_json(self.status_file, outcome)

    def clear_status(self) -> None:
        self.status_file.unlink(missing_ok=True)

    def save_model(self, model: Any) -> Path:
        """Save the final model; written under another name and renamed, so a kill never leaves half a model."""
        partial = self.path / PARTIAL_MODEL_FILE
        try:
            model.save(partial)
            partial.replace(self.model_file)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise with_path(error, partial) from None
        return self.model_file

    def save_smoothing(self, noise: dict[str, Any], extra: dict[str, Any]) -> Path:
        """Save the run's training noise as the model's smoothing sidecar (what certify reads)."""
        from reengage.observation_noise import SmoothingConfig, save_sidecar

        return save_sidecar(self.model_file, SmoothingConfig.from_dict(dict(noise)), extra)

    def clear(self) -> list[Path]:
        """Delete the files a run wrote into the folder (for --restart); other files (:data:`KEPT_ON_RESTART`
        among them) are left alone. The caller owns the folder (:func:`own_run_folder`)."""
        from .checkpoint import previous_checkpoint, staging_checkpoint

        removed: list[Path] = []
        if not self.path.is_dir():
            return removed
        for folder in (
            self.checkpoint_dir,
            staging_checkpoint(self.checkpoint_dir),
            previous_checkpoint(self.checkpoint_dir),
            self.path / _OLD_CHECKPOINT_DIR,
        ):
            if folder.exists():
                shutil.rmtree(folder)
                removed.append(folder)
        paths = [self.path / name for name in _RUN_FILES]
        for pattern in _RUN_PATTERNS:
            paths.extend(self.path.glob(pattern))
        for path in paths:
            if path.is_file():
                path.unlink()
                removed.append(path)
        return removed

    # -- the model and its environment --------------------------------------------------------
    def model_path(self, checkpoint: bool = False) -> Path:
        """``model.zip`` of a finished run, or with ``checkpoint`` the newest checkpoint's model."""
        from .checkpoint import MODEL_FILE as CHECKPOINT_MODEL_FILE

        path = self.checkpoint_dir / CHECKPOINT_MODEL_FILE if checkpoint else self.model_file
        if not path.exists():
            if checkpoint:
                raise ValueError(f"{self.path} has no checkpoint ({path} is missing)")
            raise ValueError(
                f"{self.path} has no {MODEL_FILE}: the run has not finished; continue it with 'python train.py "
                f"--logdir {self.path} --resume', or pass --checkpoint to evaluate its newest checkpoint"
            )
        return path

    def agent_class(self) -> type:
        """The class the run trained (and saved) its model with."""
        from .build import agent_class

        return agent_class(self.read_config())

    def make_env(self, noise_seed: int | None = None, render_mode: str | None = None) -> Any:
        """One environment as the run made it (see :func:`make_run_env`)."""
        return make_run_env(self.read_config(), noise_seed, render_mode)

    def load_model(self, device: str = "cpu", checkpoint: bool = False) -> tuple[dict[str, Any], Any]:
        """``(config, model)``: the saved configuration and the final model (or the newest checkpoint's)."""
        from stable_baselines3.common.vec_env import DummyVecEnv

        from .build import agent_class, check_device

        config = self.read_config()
        path = self.model_path(checkpoint)
        check_device(device)
        # stable-baselines3 needs an env to rebuild a HER agent (its buffer is set up with one)
        env = DummyVecEnv([lambda: make_run_env(config)])
        model = agent_class(config).load(path, env=env, device=device)
        return config, model


def make_run_env(config: dict[str, Any], noise_seed: int | None = None, render_mode: str | None = None) -> Any:
    """One environment as the run of ``config`` made it: the observation-noise wrapper too, its generator seeded
    ``noise_seed``; ``render_mode`` for videos and pictures."""
    from .build import make_single_env

    if render_mode is not None:
        config = dict(config, env_kwargs={**config["env_kwargs"], "render_mode": render_mode})
    return make_single_env(config, noise_seed=noise_seed)
