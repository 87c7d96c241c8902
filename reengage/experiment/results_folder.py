"""The results folder of an experiment (``python -m reengage.experiment run FILE --results DIR``)::

    DIR/experiment.json                 the manifest: the file, its settings and every run's identity
    DIR/runs/<run id>/                  one run folder per run (reengage.experiment.run_folder)
    DIR/trials.csv, DIR/best.yaml       a tuning study's trials and best settings (reengage.experiment.tune; its
                                        study.db stays out of git: these two are its text record)

The report and the re-evaluation read the runs the manifest names, so runs left behind by an older version of
the file (another configuration hash) stay on disk but do not enter the statistics; a folder without a manifest
(runs copied from elsewhere) offers every run folder with a ``run.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .run_folder import RECORD_FILES, RUN_FILE, RunFolder

MANIFEST_FILE = "experiment.json"
RUNS_DIR = "runs"
# a tuning study's record beside the manifest (written by reengage.experiment.tune)
STUDY_RECORD_FILES = ("trials.csv", "best.yaml")


def run_folder_of(results_dir: Path, run_id: str) -> RunFolder:
    """The folder of the run ``run_id`` (a relative path: environment, variant, grid point, seed and hash)."""
    return RunFolder(Path(results_dir) / RUNS_DIR / run_id)


def write_manifest(results_dir: Path, manifest: dict[str, Any]) -> None:
    from reengage.file_faults import make_folders

    results_dir = Path(results_dir)
    make_folders(results_dir)  # a folder that cannot be made leaves none of its parents behind
    (results_dir / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1))


def read_manifest(results_dir: Path) -> dict[str, Any] | None:
    """The manifest, or None when the folder has none."""
    path = Path(results_dir) / MANIFEST_FILE
    return json.loads(path.read_text()) if path.exists() else None


def runs_of(results_dir: Path) -> tuple[dict[str, Any] | None, list[tuple[RunFolder, dict[str, Any]]]]:
    """``(manifest, [(run folder, identity), ...])``: the manifest's runs, else every folder with a ``run.json``."""
    results_dir = Path(results_dir)
    manifest = read_manifest(results_dir)
    if manifest is not None:
        return manifest, [(run_folder_of(results_dir, run["run_id"]), run) for run in manifest["runs"]]
    found = []
    for path in sorted(results_dir.rglob(RUN_FILE)):
        found.append((RunFolder(path.parent), json.loads(path.read_text())))
    return None, found


def record_paths(results_dir: Path) -> list[Path]:
    """The files to keep of a results folder: its manifest (and a study's trials and best settings) and each
    finished run's :data:`RECORD_FILES`.

    Unfinished, failed and interrupted runs are left out (their state is a checkpoint, which is never
    committed); so are the model, checkpoints and TensorBoard events of finished runs.
    """
    results_dir = Path(results_dir)
    paths = [path for path in [results_dir / name for name in (MANIFEST_FILE, *STUDY_RECORD_FILES)] if path.exists()]
    for run_file in sorted(results_dir.rglob(RUN_FILE)):
        folder = RunFolder(run_file.parent)
        if folder.is_finished():
            paths.extend(folder.path / name for name in RECORD_FILES if (folder.path / name).exists())
    return paths
