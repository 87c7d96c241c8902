"""Checkpoints that resume a training run exactly where it stopped.

A checkpoint is a folder with the model (weights and optimisers, ``model.zip``), the replay buffer,
and ``state.pkl``: the training environment as it stands (mid-episode included), every random
number generator the run draws from, and the run's own bookkeeping; ``manifest.json``, written last,
holds the step and each file's size and SHA-256. A checkpoint is written to a staging folder and
renamed into place, so a run killed while writing keeps its previous checkpoint; the one before the
newest is kept as ``checkpoint.prev``, and loading falls back to it when the newest is unreadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import load_from_pkl

from reengage.file_faults import with_path

from . import unpickling

MODEL_FILE = "model.zip"
BUFFER_FILE = "replay_buffer.pkl"
STATE_FILE = "state.pkl"
# written last: the step and every other file's size and SHA-256. A folder without it is a write cut short.
MANIFEST_FILE = "manifest.json"
_PAYLOAD_FILES = (MODEL_FILE, BUFFER_FILE, STATE_FILE)


class CheckpointError(ValueError):
    """No checkpoint of the run can be read; the message names each file and what is wrong with it."""


def previous_checkpoint(directory: Path) -> Path:
    """The checkpoint before the newest one, kept as a fall-back should the newest be unreadable."""
    directory = Path(directory)
    return directory.with_name(directory.name + ".prev")


def staging_checkpoint(directory: Path) -> Path:
    """Where a checkpoint is written before it is renamed into place."""
    directory = Path(directory)
    return directory.with_name(directory.name + ".tmp")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def manifest_problem(folder: Path) -> str | None:
    """Why an existing checkpoint folder cannot be used as it stands (``None`` if it can, or is absent)."""
    folder = Path(folder)
    if not folder.exists():
        return None
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        entries = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{folder} has no readable {MANIFEST_FILE} (a write cut short)"
    for name, entry in entries.items():
        path = folder / name
        if not path.exists():
            return f"{path} is missing"
        if path.stat().st_size != entry["size"]:
            return f"{path} is truncated or altered ({path.stat().st_size} bytes, {entry['size']} written)"
    return None


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's manifest, or ``None`` if the folder is missing, was cut short, or its files' sizes
    disagree with the manifest (a truncated file)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST_FILE).read_text())
        for name, entry in manifest["files"].items():
            if (Path(folder) / name).stat().st_size != entry["size"]:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def capture_rng_states(model: Any) -> dict[str, Any]:
    states = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "action_space": model.action_space,
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    if hasattr(model, "get_reengage_rng_state"):
        states["reengage"] = model.get_reengage_rng_state()
    return states


def restore_rng_states(model: Any, states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    # loading a model re-seeds its action space; the random-exploration phase draws from it
    model.action_space = states["action_space"]
    if "reengage" in states:
        model.set_reengage_rng_state(states["reengage"])


def save_checkpoint(
    directory: Path, model: Any, run_state: dict[str, Any], run_config: dict[str, Any] | None = None
) -> None:
    """Write a checkpoint atomically: into a staging folder, then renamed into place.

    ``run_config`` (the run's ``config.yaml``: configuration and seed) goes into the manifest, so a run whose
    ``config.yaml`` is lost or damaged can still be resumed from its checkpoint (:func:`checkpoint_config`).

    A kill at any moment leaves the newest complete checkpoint readable: while the staging folder is
    written, the current and previous checkpoints are untouched; the renames that follow never leave
    fewer than one complete checkpoint on disk.
    """
    directory = Path(directory)
    staging = staging_checkpoint(directory)
    previous = previous_checkpoint(directory)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        _write_staging(staging, model, run_state, run_config)
    except OSError as error:
        # a full disk or a folder made read-only: the half-written staging folder goes (it frees the space it
        # took), and the current and previous checkpoints were never touched
        shutil.rmtree(staging, ignore_errors=True)
        raise with_path(error, staging) from None
    if read_manifest(directory) is not None:
        # the newest complete checkpoint becomes the fall-back
        shutil.rmtree(previous, ignore_errors=True)
        directory.rename(previous)
    else:
        shutil.rmtree(directory, ignore_errors=True)  # absent, or a folder that cannot be trusted
    staging.rename(directory)


def _write_staging(staging: Path, model: Any, run_state: dict[str, Any], run_config: dict[str, Any] | None) -> None:
    """The checkpoint's files and, last, its manifest, into the staging folder."""
    model.save(staging / MODEL_FILE)
    model.save_replay_buffer(staging / BUFFER_FILE)
    payload = {"env": model.get_env(), "rng": capture_rng_states(model), "run_state": run_state}
    with open(staging / STATE_FILE, "wb") as handle:
        cloudpickle.dump(payload, handle)
    files = {}
    for name in _PAYLOAD_FILES:
        _fsync_file(staging / name)
        files[name] = {"size": (staging / name).stat().st_size, "sha256": _sha256(staging / name)}
    manifest: dict[str, Any] = {"step": int(model.num_timesteps), "files": files}
    if run_config is not None:
        manifest["config"] = run_config
    (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))
    _fsync_file(staging / MANIFEST_FILE)


def checkpoint_candidates(directory: Path) -> list[tuple[Path, int | None]]:
    """Complete checkpoint folders of a run, newest first, with their steps.

    A kill between the two renames of :func:`save_checkpoint` leaves the newest checkpoint in the
    staging folder (complete: it has its manifest) and the one before it as ``.prev``.
    """
    directory = Path(directory)
    found: list[tuple[Path, int | None]] = []
    for folder in (directory, staging_checkpoint(directory), previous_checkpoint(directory)):
        manifest = read_manifest(folder)
        if manifest is not None:
            found.append((folder, int(manifest["step"])))
        elif folder == directory and (folder / STATE_FILE).exists() and not (folder / MANIFEST_FILE).exists():
            found.append((folder, None))  # written before manifests existed
    return sorted(found, key=lambda item: -1 if item[1] is None else item[1], reverse=True)


def checkpoint_config(directory: Path) -> dict[str, Any] | None:
    """The run configuration (with its seed) that the newest complete checkpoint carries, or ``None``
    (no checkpoint, or one written before checkpoints carried it)."""
    for folder, _ in checkpoint_candidates(directory):
        manifest = read_manifest(folder)
        config = manifest.get("config") if manifest else None
        if isinstance(config, dict) and "env_id" in config and "seed" in config:
            return config
    return None


def find_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint folder, or ``None``."""
    candidates = checkpoint_candidates(directory)
    return candidates[0][0] if candidates else None


def _verify(folder: Path) -> None:
    manifest = read_manifest(folder)
    if manifest is None:
        return  # a checkpoint without manifest (older format): loading is the only check
    for name, entry in manifest["files"].items():
        if _sha256(folder / name) != entry["sha256"]:
            raise CheckpointError(f"{folder / name} does not match the checksum in its manifest")


def load_latest_checkpoint(
    directory: Path, agent_cls: type, device: str = "cpu", warn: Any = print
) -> tuple[Any, dict[str, Any], Path]:
    """Load the newest readable checkpoint, falling back to older ones; ``(model, run_state, folder)``.

    Every fall-back is reported through ``warn``; if none can be read, :class:`CheckpointError` names
    each candidate's problem. Nothing on disk is changed.
    """
    directory = Path(directory)
    candidates = checkpoint_candidates(directory)
    usable = {folder for folder, _ in candidates}
    problems = [
        problem
        for folder in (directory, staging_checkpoint(directory), previous_checkpoint(directory))
        if folder not in usable and (problem := manifest_problem(folder)) is not None
    ]
    for folder, _ in candidates:
        try:
            _verify(folder)
            model, run_state = load_checkpoint(folder, agent_cls, device)
        except Exception as error:  # noqa: BLE001  (any unreadable file: pickle, zip, torch, checksum)
            problems.append(f"{_culprit(folder, error)}: {type(error).__name__}: {error}".strip())
            continue
        if problems:
            warn(f"warning: {'; '.join(problems)}; resuming from {folder}")
        return model, run_state, folder
    details = "; ".join(problems)
    raise CheckpointError(f"no readable checkpoint in {directory.parent}: {details or 'none was written'}")


def _culprit(folder: Path, error: BaseException) -> str:
    """The file a load error came from (tagged by :class:`_blame`), else the folder."""
    stage = getattr(error, "_checkpoint_file", None)
    return str(folder / stage) if stage else str(folder)


def load_checkpoint(directory: Path, agent_cls: type[Any], device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild the agent, its replay buffer, environment and random states; returns (model, run_state)."""
    directory = Path(directory)
    with _blame(STATE_FILE):
        with open(directory / STATE_FILE, "rb") as handle:
            payload = unpickling.load(handle)
    with _blame(MODEL_FILE):
        # force_reset=False keeps the saved last observation: the episode in flight goes on
        model = agent_cls.load(directory / MODEL_FILE, env=payload["env"], device=device, force_reset=False)
    buffer_path = directory / BUFFER_FILE
    with _blame(BUFFER_FILE):
        if issubclass(model.replay_buffer_class, ReplayBuffer):
            # the episode in flight continues: do not mark the buffer's last trajectory as finished
            model.load_replay_buffer(buffer_path, truncate_last_traj=False)
        else:
            # stable-baselines3's loader accepts ReplayBuffer subclasses only (not, e.g., GoalSetReplayBuffer)
            model.replay_buffer = load_from_pkl(buffer_path)
    restore_rng_states(model, payload["rng"])
    return model, payload["run_state"]


class _blame:
    """Tags an exception raised inside the block with the checkpoint file being read."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        if error is not None and isinstance(error, Exception):
            try:
                error._checkpoint_file = self.name  # type: ignore[attr-defined]
            except AttributeError:
                pass
        return None  # never swallows the exception
