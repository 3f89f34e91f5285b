"""What loops and parallel blocks share: launch pacing, `tolerate`, and the failure policy."""

from __future__ import annotations

import math

import trio


def tolerance(value: int | str, total: int) -> int:
    """How many failures are accepted: a count, or floor(total x percent / 100)."""
    if isinstance(value, int):
        return value
    return math.floor(total * float(value.strip()[:-1]) / 100)


class Pacing:
    """Starts spaced by at least `delay` seconds (rate limiting), booked in call order."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.next_start = -math.inf

    async def wait_turn(self) -> None:
        if self.delay <= 0:
            return
        start = max(trio.current_time(), self.next_start)
        self.next_start = start + self.delay
        await trio.sleep_until(start)


class FailurePolicy:
    """`stop` / `finish` / `continue` once failures exceed the tolerated count: `stop` cancels
    what runs, `stop` and `finish` start nothing more."""

    def __init__(self, policy: str, limit: int, cancel_scope: trio.CancelScope) -> None:
        self.policy = policy
        self.limit = limit
        self.cancel_scope = cancel_scope
        self.stopping = False

    def failures_now(self, count: int) -> None:
        """Called after each failure with the number of failures so far."""
        if count > self.limit and self.policy != "continue":
            self.stopping = True
            if self.policy == "stop":
                self.cancel_scope.cancel()
