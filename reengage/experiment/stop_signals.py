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
