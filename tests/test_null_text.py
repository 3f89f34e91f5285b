"""An unset optional input is null as data and empty as text: no command ever sees `null`."""

from __future__ import annotations

from tests.conftest import RunText

DRAWER = """
inputs:
  opt: {type: string}
  flag: {type: boolean}
env:
  TOP: ${inputs.opt}
  TOP_FLAG: ${inputs.flag}
steps:
  - id: shell
    env:
      STEP: ${inputs.opt}
      MIXED: "<${inputs.opt}>"
    run: >-
      printf '[%s][%s][%s][%s][%s][%s]'
      ${inputs.opt} "x${inputs.opt}" "$TOP" "$STEP" "$MIXED" "$TOP_FLAG"
  - id: argv
    run: [printf, "[%s]", "${inputs.opt}", "--opt=${inputs.opt}"]
  - id: stdin
    stdin: ${inputs.opt}
    run: [wc, -c]
  - id: data
    kind: value
    value:
      whole: ${inputs.opt}
      within: "a-${inputs.opt}"
      is_null: ${inputs.opt == null}
"""


def test_an_unset_optional_input_reaches_commands_as_empty_text(run_text: RunText) -> None:
    steps = run_text(DRAWER).steps
    assert steps["shell"]["output"]["stdout"] == "[][x][][][<>][]"
    assert steps["argv"]["output"]["stdout"] == "[][--opt=]"
    assert steps["stdin"]["output"]["stdout"].strip() == "0"


def test_an_unset_optional_input_is_null_as_data(run_text: RunText) -> None:
    output = run_text(DRAWER).steps["data"]["output"]
    assert output == {"whole": None, "within": "a-", "is_null": True}


def test_the_drawer_env_reads_values_as_text_like_a_step_env(run_text: RunText) -> None:
    # The drawer's own env: once showed Python's spelling ("None", "True", "['a']").
    result = run_text(
        """
        inputs:
          on: {type: boolean, default: true}
          names: {type: array, default: [a, b]}
        env:
          ON: ${inputs.on}
          NAMES: ${inputs.names}
        steps:
          - id: show
            run: printf '%s %s' "$ON" "$NAMES"
        """
    )
    assert result.steps["show"]["output"]["stdout"] == 'true ["a","b"]'
