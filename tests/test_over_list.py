"""An inline `over:` list is resolved like a `value:` list: references in it are data."""

from __future__ import annotations

from tests.conftest import RunText


def test_references_in_an_inline_over_list_are_resolved(run_text: RunText) -> None:
    result = run_text(
        """
        inputs:
          tok: {type: string, default: secret-ish}
          n: {type: integer, default: 3}
        steps:
          - id: each
            kind: for_each
            over: ["${inputs.tok}", "x-${inputs.n}", "${inputs.n}", {k: "${inputs.tok}"}, "$${lit}"]
            steps:
              - id: show
                kind: value
                value: ${item}
        """
    )
    results = result.steps["each"]["output"]["results"]
    items = [entry["item"] for entry in results]
    assert items == ["secret-ish", "x-3", 3, {"k": "secret-ish"}, "${lit}"]
    assert [entry["steps"]["show"]["output"] for entry in results] == items


def test_an_unresolvable_reference_in_an_over_list_fails_the_loop(run_text: RunText) -> None:
    result = run_text(
        """
        steps:
          - id: first
            kind: value
            value: {}
          - id: each
            kind: for_each
            over: ["${first.output.missing}"]
            steps:
              - id: show
                kind: value
                value: ${item}
        """
    )
    each = result.steps["each"]
    assert each["status"] == "failed"
    assert each["error"]["code"] == "REF_UNRESOLVED"
