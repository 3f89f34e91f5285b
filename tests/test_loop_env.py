"""DRAWER_ITEM and DRAWER_INDEX: the innermost loop's, for `for_each` and `repeat` alike."""

from __future__ import annotations

from tests.conftest import RunText

PRINT_LOOP_ENV = 'printf "%s/%s" "$${DRAWER_ITEM-unset}" "$${DRAWER_INDEX-unset}"'


def test_a_repeat_iteration_sees_its_own_index(run_text: RunText) -> None:
    result = run_text(
        f"""
        steps:
          - id: tries
            kind: repeat
            max_iterations: 3
            until: "false"
            on_exhausted: ok
            steps:
              - id: probe
                run: '{PRINT_LOOP_ENV}'
        """
    )
    results = result.steps["tries"]["output"]["results"]
    assert [r["steps"]["probe"]["output"]["stdout"] for r in results] == ["0/0", "1/1", "2/2"]


def test_a_repeat_inside_a_for_each_names_the_innermost_loop(run_text: RunText) -> None:
    result = run_text(
        f"""
        steps:
          - id: each
            kind: for_each
            over: [a, b]
            steps:
              - id: tries
                kind: repeat
                max_iterations: 2
                index_as: attempt
                until: "false"
                on_exhausted: ok
                steps:
                  - id: probe
                    run: '{PRINT_LOOP_ENV}; printf " %s" "$DRAWER_VAR_ITEM"'
        """
    )
    items = result.steps["each"]["output"]["results"]
    tries = [item["steps"]["tries"]["output"]["results"] for item in items]
    seen = [[r["steps"]["probe"]["output"]["stdout"] for r in results] for results in tries]
    # DRAWER_VAR_<NAME> still gives every enclosing loop's variables.
    assert seen == [["0/0 a", "1/1 a"], ["0/0 b", "1/1 b"]]


def test_a_parallel_branch_sees_the_enclosing_loop_and_is_not_itself_an_iteration(
    run_text: RunText,
) -> None:
    result = run_text(
        f"""
        steps:
          - id: top
            kind: parallel
            branches:
              - id: alone
                run: '{PRINT_LOOP_ENV}'
          - id: each
            kind: for_each
            over: [x]
            steps:
              - id: fan
                kind: parallel
                branches:
                  - id: one
                    run: '{PRINT_LOOP_ENV}'
                  - id: group
                    steps:
                      - id: two
                        run: '{PRINT_LOOP_ENV}'
        """
    )
    assert result.steps["top"]["output"]["alone"]["output"]["stdout"] == "unset/unset"
    fan = result.steps["each"]["output"]["results"][0]["steps"]["fan"]["output"]
    assert fan["one"]["output"]["stdout"] == "x/0"
    assert fan["group"]["output"]["two"]["stdout"] == "x/0"
