"""The signals that stop a run or a grid, and how a stopping process shuts them out."""

from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_stop_signals() -> None:
    """The process is stopping: another Ctrl-C or SIGTERM now (an impatient user, a supervisor that signals
    twice) must not turn the exit into a traceback from an interpreter shutdown hook, or replace exit code 130
    by a death from the signal."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)


def raised_by_interrupt(error: BaseException) -> bool:
    """Whether ``error`` came out of a KeyboardInterrupt: a second Ctrl-C can land inside library code whose
    cleanup then fails in turn (torch's zip writer, tqdm's lock), so the user's stop-at-once surfaces as another
    exception with the KeyboardInterrupt in its chain."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
