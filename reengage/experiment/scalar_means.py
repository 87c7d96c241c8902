"""Means of TensorBoard scalars over the last part of each run: the loss numbers the docs quote.

    python -m reengage.experiment scalars results/robotics_handreach_sweep --from-step 90000 \\
        --tag train/critic_loss --tag train/reengage_loss --tag train/actor_loss

Every run folder under the given path (a results folder, or one run folder) with TensorBoard event files
gives one row per tag: the mean of the values logged at steps >= ``from_step``, how many there were, and
the run's ``reengage_alpha`` (``train/reengage_loss`` is logged unweighted: alpha times it is what the
critic's loss adds).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .run_folder import EVENTS_GLOB, RunFolder, UnreadableRunError
from .tensorboard import read_scalars


class ScalarsError(ValueError):
    """Bad input: a path without runs, or a tag no run logged (the message names the valid ones)."""


@dataclass(frozen=True)
class ScalarMean:
    run: str
    alpha: float | None
    tag: str
    mean: float | None  # None: the run logged the tag, but never at a step >= from_step
    points: int
    last_step: int


def run_folders(path: Path) -> list[Path]:
    """Folders under ``path`` (``path`` itself included) that hold TensorBoard event files, sorted."""
    if not path.exists():
        raise ScalarsError(f"{path} not found")
    if not path.is_dir():
        raise ScalarsError(f"{path} is a file; give a results folder or a run folder")
    folders = sorted({events.parent for events in path.rglob(EVENTS_GLOB)})
    if not folders:
        raise ScalarsError(f"no TensorBoard event files under {path}")
    return folders


def _alpha(run_dir: Path) -> float | None:
    try:
        saved = RunFolder(run_dir).load_config_file()
    except UnreadableRunError as error:
        raise ScalarsError(str(error)) from None
    value = saved.get("reengage_alpha") if isinstance(saved, dict) else None
    return None if value is None else float(value)


def scalar_means(path: Path, tags: list[str] | None, from_step: int) -> list[ScalarMean]:
    """One :class:`ScalarMean` per run folder and tag; ``tags=None`` takes every ``train/`` scalar."""
    path = Path(path)
    runs = [(folder, read_scalars(folder)) for folder in run_folders(path)]
    logged = sorted({tag for _, scalars in runs for tag in scalars})
    if tags is None:
        tags = [tag for tag in logged if tag.startswith("train/")]
    unknown = [tag for tag in tags if tag not in logged]
    if unknown:
        raise ScalarsError(
            f"tag(s) {', '.join(map(repr, unknown))} not logged by any run under {path}; "
            f"logged tags: {', '.join(logged)}"
        )
    rows = []
    for folder, scalars in runs:
        name = "." if folder == path else str(folder.relative_to(path))
        for tag in tags:
            series = scalars.get(tag, [])
            values = [value for step, value in series if step >= from_step]
            rows.append(
                ScalarMean(
                    name,
                    _alpha(folder),
                    tag,
                    sum(values) / len(values) if values else None,
                    len(values),
                    series[-1][0] if series else -1,
                )
            )
    return rows


def scalars_markdown(rows: list[ScalarMean], from_step: int) -> str:
    lines = [
        f"| run | alpha | tag | mean over steps >= {from_step:,} | values | last step |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        alpha = "-" if row.alpha is None else f"{row.alpha:g}"
        mean = "-" if row.mean is None else f"{row.mean:.4g}"
        last = "-" if row.last_step < 0 else f"{row.last_step:,}"
        lines.append(f"| {row.run} | {alpha} | {row.tag} | {mean} | {row.points} | {last} |")
    return "\n".join(lines) + "\n"
