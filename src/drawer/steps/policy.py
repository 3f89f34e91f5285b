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
    """Starts spaced by at least `delay` seconds (rate limiting), in the order the turns were
    asked for: a caller that starts as soon as `wait_turn` returns (no checkpoint between)
    starts before every later turn. Sleeping until booked times alone is not enough: sleepers
    whose times pass in the same scheduler tick wake in any order."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.next_start = -math.inf
        self.turns = trio.Lock()  # fair: handed over in the order it was asked for

    async def wait_turn(self) -> None:
        if self.delay <= 0:
            return
        async with self.turns:
            await trio.sleep_until(self.next_start)
            self.next_start = trio.current_time() + self.delay


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
