"""The signals that cancel a run, in one place: drawer itself, the Action's wrapper that
passes them on, and the Dask workers that must survive them.

Each cancels the run as SIGTERM does: running commands get SIGTERM, then SIGKILL after the
grace period; steps end `cancelled`; the store records the end; drawer exits 128 + N. A
terminal closed or an SSH session dropped sends SIGHUP, Ctrl-\\ sends SIGQUIT: without a
handler either would kill drawer outright and leave every command running (they lead their
own sessions, so the hangup never reaches them). A second SIGINT or SIGQUIT (Ctrl-C or
Ctrl-\\ again) skips the grace period: the commands are killed at once.
"""

from __future__ import annotations

import signal

CANCELLING: tuple[signal.Signals, ...] = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
)
KILL_NOW: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGQUIT)


def exit_code(signum: int | None) -> int:
    """drawer's exit code after a run cancelled by `signum` (130 when no signal is known)."""
    return 128 + (signum or signal.SIGINT)
