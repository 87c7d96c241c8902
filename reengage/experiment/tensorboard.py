"""Read TensorBoard scalars back (for tests, plots and comparisons)."""

from __future__ import annotations

from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def read_scalars(logdir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars of every event file in ``logdir`` as ``{tag: [(step, value), ...]}``, sorted by step.

    A resumed run writes a second event file that repeats the steps between its checkpoint and the
    moment the first process died; for each step the value written last (by wall time) is kept.
    """
    latest: dict[str, dict[int, tuple[float, float]]] = {}
    files = sorted(Path(logdir).glob("events.out.tfevents.*"))
    if not files:
        raise FileNotFoundError(f"no TensorBoard event files in {logdir}")
    for path in files:
        accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            per_step = latest.setdefault(tag, {})
            for event in accumulator.Scalars(tag):
                if event.step not in per_step or event.wall_time >= per_step[event.step][0]:
                    per_step[event.step] = (event.wall_time, event.value)
    return {tag: sorted((step, value) for step, (_, value) in steps.items()) for tag, steps in latest.items()}
