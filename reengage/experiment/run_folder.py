"""What a run folder holds, and what may be done with it: start, resume, extend or restart.

Every refusal is a :class:`ValueError` whose one-line message says what to do instead; nothing in
the folder is changed before the decision is made.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .checkpoint import checkpoint_candidates, manifest_problem, previous_checkpoint, staging_checkpoint

CONFIG_FILE = "config.yaml"
EVALUATIONS_FILE = "evaluations.csv"
EPISODES_FILE = "episodes.csv"
FINAL_MODEL = "model.zip"
SEGMENTS_FILE = "segments.json"
CHECKPOINT_DIR = "checkpoint"

# keys that may differ between a run and its resumption without changing what is computed
RESUME_FREE_KEYS = {"timesteps", "checkpoint_every"}


@dataclass
class RunFolder:
    """The state of a run folder on disk."""

    path: Path
    saved_config: dict[str, Any] | None  # config.yaml (with the seed), None if no run was started here
    finished_step: int | None  # the step of model.zip when the run completed, else None
    checkpoint_step: int | None  # the newest complete checkpoint's step, else None
    has_checkpoint: bool
    # why checkpoint folders on disk cannot be used: (folder, problem), the staging folder included
    checkpoint_problems: list[tuple[Path, str]]

    @property
    def started(self) -> bool:
        return self.saved_config is not None


def check_logdir_path(path: Path, option: str = "--logdir") -> None:
    """Refuse a folder argument (a run folder, a results or report folder) that is a file, or lies under one.

    ``option`` names the argument in the message (``--logdir``, ``--results``, ``--out``).
    """
    path = Path(path)
    for candidate in [path, *path.parents]:
        if candidate.exists() and not candidate.is_dir():
            where = "is a file" if candidate == path else f"lies under {candidate}, which is a file"
            raise ValueError(f"{option} {path} {where}; give a folder path")


def read_saved_config(run_dir: Path) -> dict[str, Any]:
    """The configuration saved by the run in ``run_dir`` (ValueError if there is none or it is unreadable)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ValueError(f"no run in {run_dir} ({CONFIG_FILE} is missing); start it without --resume")
    try:
        saved = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not readable YAML ({error}); pass --restart to start the run over") from None
    if not isinstance(saved, dict) or "env_id" not in saved:
        raise ValueError(f"{path} does not hold a run configuration; pass --restart to start the run over")
    return saved


def inspect_run_folder(run_dir: Path) -> RunFolder:
    run_dir = Path(run_dir)
    saved = read_saved_config(run_dir) if (run_dir / CONFIG_FILE).exists() else None
    finished = None
    if (run_dir / FINAL_MODEL).exists() and (run_dir / SEGMENTS_FILE).exists():
        try:
            segments = json.loads((run_dir / SEGMENTS_FILE).read_text())
            finished = int(segments[-1]["end"]) if segments and "end" in segments[-1] else None
        except (ValueError, KeyError, TypeError, IndexError):
            finished = None
    candidates = checkpoint_candidates(run_dir / CHECKPOINT_DIR)
    step = candidates[0][1] if candidates else None
    usable = {folder for folder, _ in candidates}
    checkpoint = run_dir / CHECKPOINT_DIR
    problems = [(folder, problem) for folder in (checkpoint, staging_checkpoint(checkpoint), previous_checkpoint(checkpoint))
                if folder not in usable and (problem := manifest_problem(folder)) is not None]
    return RunFolder(run_dir, saved, finished, step, bool(candidates), problems)


def _resume_command(run_dir: Path) -> str:
    return f"python train.py --logdir {run_dir} --resume"


def refuse_fresh_start(folder: RunFolder) -> None:
    """A fresh start into a folder that already holds a run: say what to do instead."""
    if not folder.started:
        return
    if folder.finished_step is not None:
        raise ValueError(
            f"{folder.path} holds a finished run ({folder.finished_step} steps); extend it with "
            f"'{_resume_command(folder.path)} --timesteps N', or choose another --logdir"
        )
    if folder.has_checkpoint:
        at = f" from step {folder.checkpoint_step}" if folder.checkpoint_step is not None else ""
        raise ValueError(
            f"{folder.path} holds an unfinished run; continue it{at} with '{_resume_command(folder.path)}', "
            "or pass --restart to discard it and start over"
        )
    raise ValueError(
        f"{folder.path} holds a run that never reached a checkpoint; pass --restart to start it over "
        "(its files are deleted), or choose another --logdir"
    )


def check_resume(folder: RunFolder, record: dict[str, Any]) -> bool:
    """Whether resuming ``folder`` with ``record`` (config + seed) is possible; ``False`` means the run
    is already finished at exactly the requested length (nothing to do). Raises ValueError otherwise."""
    if not folder.started:
        raise ValueError(f"no run in {folder.path} ({CONFIG_FILE} is missing); start it without --resume")
    changed = sorted(
        key for key in set(folder.saved_config) | set(record)  # type: ignore[arg-type]
        if key not in RESUME_FREE_KEYS and folder.saved_config.get(key) != record.get(key)  # type: ignore[union-attr]
    )
    if changed:
        details = "; ".join(f"{k}: {folder.saved_config.get(k)!r} -> {record.get(k)!r}" for k in changed)  # type: ignore[union-attr]
        raise ValueError(
            f"--resume with settings that differ from {folder.path / CONFIG_FILE} would not continue the same run "
            f"({details}); leave them out to use the saved ones"
        )
    timesteps = int(record["timesteps"])
    if folder.finished_step is not None:
        if timesteps < folder.finished_step:
            raise ValueError(
                f"--timesteps {timesteps} is below the {folder.finished_step} steps this run already finished; "
                "a finished run can be extended, never shortened (nothing was changed)"
            )
        if timesteps == folder.finished_step:
            return False
    if not folder.has_checkpoint:
        if folder.finished_step is not None:
            raise ValueError(
                f"{folder.path} finished without a checkpoint (checkpoint_every 0), so it cannot be extended; "
                "start a new run with the longer --timesteps in another --logdir"
            )
        damaged = [problem for path, problem in folder.checkpoint_problems if path.name != CHECKPOINT_DIR + ".tmp"]
        if damaged:
            raise ValueError(
                f"no readable checkpoint in {folder.path}: {'; '.join(damaged)}; pass --restart (instead of "
                "--resume) to start the run over"
            )
        cut = " (its first checkpoint write was cut short)" if folder.checkpoint_problems else ""
        raise ValueError(
            f"{folder.path} holds a run that never reached a checkpoint{cut}, so there is nothing to resume; "
            "pass --restart (instead of --resume) to start it over"
        )
    if folder.checkpoint_step is not None and timesteps < folder.checkpoint_step:
        raise ValueError(
            f"--timesteps {timesteps} is below the step of the run's checkpoint ({folder.checkpoint_step}); "
            f"give --timesteps >= {folder.checkpoint_step} or leave it out"
        )
    return True


# what a run writes into its folder; --restart removes these and nothing else
_RUN_FILES = (CONFIG_FILE, EVALUATIONS_FILE, EPISODES_FILE, FINAL_MODEL, SEGMENTS_FILE)
_RUN_PATTERNS = ("events.out.tfevents.*", FINAL_MODEL + ".*", "*.smoothing.json")


def clear_run_folder(run_dir: Path) -> list[Path]:
    """Delete the files a run wrote into ``run_dir`` (for --restart); other files are left alone."""
    run_dir = Path(run_dir)
    removed: list[Path] = []
    if not run_dir.is_dir():
        return removed
    for folder in (run_dir / CHECKPOINT_DIR, staging_checkpoint(run_dir / CHECKPOINT_DIR),
                   previous_checkpoint(run_dir / CHECKPOINT_DIR), run_dir / (CHECKPOINT_DIR + ".old")):
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(folder)
    paths = [run_dir / name for name in _RUN_FILES]
    for pattern in _RUN_PATTERNS:
        paths.extend(run_dir.glob(pattern))
    for path in paths:
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


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
