"""What may be done with a run folder: start, resume, extend or restart.

Every refusal is a :class:`ValueError` whose one-line message says what to do instead; nothing in the folder is
changed before the decision is made. The folder's files are those of :mod:`reengage.experiment.run_folder`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import (
    checkpoint_candidates,
    checkpoint_config,
    manifest_problem,
    previous_checkpoint,
    staging_checkpoint,
)
from .run_folder import CONFIG_FILE, NoRunError, RunFolder, UnreadableRunError

# keys that may differ between a run and its resumption without changing what is computed
RESUME_FREE_KEYS = {"timesteps", "checkpoint_every"}


@dataclass
class RunProgress:
    """How far the run in a folder got."""

    folder: RunFolder
    saved_config: dict[str, Any] | None  # config.yaml (with the seed), None if no run was started here
    finished_step: int | None  # the step of model.zip when the run completed, else None
    checkpoint_step: int | None  # the newest complete checkpoint's step, else None
    has_checkpoint: bool
    # why checkpoint folders on disk cannot be used: (folder, problem), the staging folder included
    checkpoint_problems: list[tuple[Path, str]]

    @property
    def started(self) -> bool:
        return self.saved_config is not None


def read_saved_config(run_dir: Path) -> dict[str, Any]:
    """The configuration saved by the run in ``run_dir``, for ``--resume`` (ValueError saying what to do).

    ``config.yaml``, else, where it is missing or damaged, the copy its newest checkpoint carries: a lost
    ``config.yaml`` never costs the checkpoints (the resumed run writes ``config.yaml`` again).
    """
    folder = RunFolder(run_dir)
    try:
        return folder.read_config()
    except (NoRunError, UnreadableRunError) as error:
        saved = checkpoint_config(folder.checkpoint_dir)
        if saved is not None:
            return saved
        if isinstance(error, NoRunError):
            raise ValueError(f"{error}; start it without --resume") from None
        raise ValueError(
            f"{error}, and no checkpoint carries the run's configuration; pass --restart to start the run over"
        ) from None


def run_progress(folder: RunFolder) -> RunProgress:
    saved = (
        read_saved_config(folder.path)
        if folder.config_file.exists() or checkpoint_config(folder.checkpoint_dir) is not None
        else None
    )
    candidates = checkpoint_candidates(folder.checkpoint_dir)
    step = candidates[0][1] if candidates else None
    usable = {path for path, _ in candidates}
    checkpoint = folder.checkpoint_dir
    problems = [
        (path, problem)
        for path in (checkpoint, staging_checkpoint(checkpoint), previous_checkpoint(checkpoint))
        if path not in usable and (problem := manifest_problem(path)) is not None
    ]
    return RunProgress(folder, saved, folder.finished_step(), step, bool(candidates), problems)


def _resume_command(run_dir: Path) -> str:
    return f"python train.py --logdir {run_dir} --resume"


def refuse_fresh_start(progress: RunProgress) -> None:
    """A fresh start into a folder that already holds a run: say what to do instead."""
    if not progress.started:
        return
    path = progress.folder.path
    if progress.finished_step is not None:
        raise ValueError(
            f"{path} holds a finished run ({progress.finished_step} steps); extend it with "
            f"'{_resume_command(path)} --timesteps N', or choose another --logdir"
        )
    if progress.has_checkpoint:
        at = f" from step {progress.checkpoint_step}" if progress.checkpoint_step is not None else ""
        raise ValueError(
            f"{path} holds an unfinished run; continue it{at} with '{_resume_command(path)}', "
            "or pass --restart to discard it and start over"
        )
    raise ValueError(
        f"{path} holds a run that never reached a checkpoint; pass --restart to start it over "
        "(its files are deleted), or choose another --logdir"
    )


def check_resume(progress: RunProgress, record: dict[str, Any]) -> bool:
    """Whether resuming with ``record`` (config + seed) is possible; ``False`` means the run is already
    finished at exactly the requested length (nothing to do). Raises ValueError otherwise."""
    path = progress.folder.path
    saved = progress.saved_config
    if saved is None:
        raise ValueError(f"no run in {path} ({CONFIG_FILE} is missing); start it without --resume")
    changed = sorted(
        key for key in set(saved) | set(record) if key not in RESUME_FREE_KEYS and saved.get(key) != record.get(key)
    )
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} -> {record.get(k)!r}" for k in changed)
        raise ValueError(
            f"--resume with settings that differ from {progress.folder.config_file} would not continue the same "
            f"run ({details}); leave them out to use the saved ones"
        )
    timesteps = int(record["timesteps"])
    if progress.finished_step is not None:
        if timesteps < progress.finished_step:
            raise ValueError(
                f"--timesteps {timesteps} is below the {progress.finished_step} steps this run already finished; "
                "a finished run can be extended, never shortened (nothing was changed)"
            )
        if timesteps == progress.finished_step:
            return False
    if not progress.has_checkpoint:
        if progress.finished_step is not None:
            raise ValueError(
                f"{path} finished without a checkpoint (checkpoint_every 0), so it cannot be extended; "
                "start a new run with the longer --timesteps in another --logdir"
            )
        staging = staging_checkpoint(progress.folder.checkpoint_dir)
        damaged = [problem for where, problem in progress.checkpoint_problems if where != staging]
        if damaged:
            raise ValueError(
                f"no readable checkpoint in {path}: {'; '.join(damaged)}; pass --restart (instead of "
                "--resume) to start the run over"
            )
        cut = " (its first checkpoint write was cut short)" if progress.checkpoint_problems else ""
        raise ValueError(
            f"{path} holds a run that never reached a checkpoint{cut}, so there is nothing to resume; "
            "pass --restart (instead of --resume) to start it over"
        )
    if progress.checkpoint_step is not None and timesteps < progress.checkpoint_step:
        raise ValueError(
            f"--timesteps {timesteps} is below the step of the run's checkpoint ({progress.checkpoint_step}); "
            f"give --timesteps >= {progress.checkpoint_step} or leave it out"
        )
    return True


def config_for_resume(
    saved: dict[str, Any],
    env_id: str | None = None,
    algo: str | None = None,
    alpha: float | None = None,
    timesteps: int | None = None,
    assignments: list[str] | None = None,
) -> tuple[dict[str, Any], int]:
    """``(config, seed)`` of a resumed run: the saved configuration with the command line's settings
    applied on top (the caller then refuses any that changed the run, see :func:`check_resume`)."""
    from .config import apply_assignment, check_resolved, parse_assignment, validate
    from .config_keys import top_level_keys

    config = {key: value for key, value in saved.items() if key != "seed"}
    if env_id is not None:
        config["env_id"] = env_id
    if algo is not None:
        config["algo"] = algo
    if alpha is not None:
        config["reengage_alpha"] = float(alpha)
    if timesteps is not None:
        config["timesteps"] = int(timesteps)
    for text in assignments or []:
        path, value = parse_assignment(text)
        apply_assignment(config, path, value)
    keys = set(top_level_keys())
    config.update(validate({key: value for key, value in config.items() if key in keys}, where="--resume"))
    check_resolved(config)
    return config, int(saved["seed"])
