"""Launch pacing: with a `delay`, loop items, repeat iterations and branches start in order."""

from __future__ import annotations

import itertools
import textwrap

import pytest
import trio
import trio.testing

from drawer import events as ev
from drawer.steps.policy import Pacing
from tests.conftest import RunText

RUNS = 12  # trio runs a batch of ready tasks forwards or backwards at random: try it often


def test_turns_pass_in_the_order_they_were_asked_for_even_when_all_are_due_at_once() -> None:
    async def main() -> tuple[list[int], list[int]]:
        pacing = Pacing(1.0)
        asked: list[int] = []
        passed: list[int] = []

        async def take_turn(number: int) -> None:
            asked.append(number)
            await pacing.wait_turn()
            passed.append(number)

        async with trio.open_nursery() as nursery:
            for number in range(6):
                nursery.start_soon(take_turn, number)
            for _ in range(6):  # bounded: each jump lets at least one turn pass
                await trio.testing.wait_all_tasks_blocked()
                # Every time booked so far passes in one tick: its sleepers wake in one batch.
                clock.jump(100)
        assert sorted(passed) == list(range(6))
        return asked, passed

    for _ in range(RUNS):
        clock = trio.testing.MockClock()
        asked, passed = trio.run(main, clock=clock)
        assert passed == asked


LOOPS = {
    "for_each": """
        kind: for_each
        over: [0, 1, 2, 3, 4, 5, 6, 7]
        parallelism: all
        delay: 1s
        steps: [{id: v, kind: value, value: "${item}"}]
    """,
    "repeat": """
        kind: repeat
        max_iterations: 8
        parallelism: 8
        until: "false"
        on_exhausted: ok
        delay: 1s
        steps: [{id: v, kind: value, value: "${index}"}]
    """,
    "parallel": """
        kind: parallel
        delay: 1s
        branches:
"""
    + "".join(f"          - {{id: b{n}, kind: value, value: {n}}}\n" for n in range(8)),
}


@pytest.mark.parametrize("kind", sorted(LOOPS))
def test_with_a_delay_every_loop_starts_its_items_in_input_order(
    run_text: RunText, kind: str
) -> None:
    body = textwrap.indent(textwrap.dedent(LOOPS[kind]).strip("\n"), "    ")
    text = f"steps:\n  - id: each\n{body}\n"
    for _ in range(RUNS):
        result = run_text(text, clock=trio.testing.MockClock(autojump_threshold=0))
        assert result.steps["each"]["status"] == "ok"
        started = result.log.of(ev.IterationStarted)
        assert [event.index for event in started] == list(range(8))
        gaps = [round(b.clock - a.clock, 6) for a, b in itertools.pairwise(started)]
        assert gaps == [1.0] * 7


def test_without_a_delay_a_for_each_starts_its_items_in_input_order(run_text: RunText) -> None:
    text = """
        steps:
          - id: each
            kind: for_each
            over: [0, 1, 2, 3, 4, 5, 6, 7]
            parallelism: 3
            steps: [{id: v, kind: wait, duration: "${item % 3}"}]
    """
    for _ in range(RUNS):
        result = run_text(text, clock=trio.testing.MockClock(autojump_threshold=0))
        assert [event.index for event in result.log.of(ev.IterationStarted)] == list(range(8))
