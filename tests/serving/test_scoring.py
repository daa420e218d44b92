"""The init/run contract: loading a script, parsing payloads, encoding results."""

from __future__ import annotations

import datetime
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from mlform.serving.scoring import (
    BadPayload,
    BadResult,
    NotReady,
    RunFailed,
    ScriptFailed,
    ScriptNotFound,
    import_script,
    load_script,
    parse_payload,
    to_json,
)
from tests.serving.conftest import write_deployment

pytestmark = pytest.mark.usefixtures("isolated_import")

KEYS = '"data", "dataframe_split", "dataframe_records", "instances", "inputs"'
EXPECTED = f"the request body must be a JSON object with exactly one of the keys {KEYS}; got "
SPLIT = (
    '"dataframe_split" must be an object with "columns" (an array of names), "data" '
    '(an array of rows) and optionally "index" (an array, one per row)'
)


# parse_payload


@pytest.mark.parametrize("key", ["data", "instances", "inputs"])
def test_plain_payloads_are_passed_as_they_are(key: str) -> None:
    value = {"rows": [[1, 2]], "extra": None}
    assert parse_payload({key: value}) is value


def test_dataframe_split_gives_a_dataframe() -> None:
    body = {"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3, 4.0]]}}
    expected = pd.DataFrame({"a": [1, 3], "b": [2.5, 4.0]})
    assert_frame_equal(parse_payload(body), expected)


def test_dataframe_split_keeps_its_index() -> None:
    body = {"dataframe_split": {"columns": ["a"], "data": [[1], [2]], "index": ["x", "y"]}}
    expected = pd.DataFrame({"a": [1, 2]}, index=["x", "y"])
    assert_frame_equal(parse_payload(body), expected)


def test_dataframe_records_gives_a_dataframe() -> None:
    body = {"dataframe_records": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}
    expected = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    assert_frame_equal(parse_payload(body), expected)


def test_without_pandas_dataframe_payloads_are_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    split = {"columns": ["a", "b"], "data": [[1, 2], [3, 4]], "index": [7, 8]}
    records = [{"a": 1}, {"b": 2}]
    assert parse_payload({"dataframe_split": split}) == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    assert parse_payload({"dataframe_records": records}) is records


@pytest.mark.parametrize(
    ("body", "got"),
    [
        ([1, 2], "an array"),
        ("data", "a string"),
        (3.5, "a number"),
        (True, "a boolean"),
        (None, "null"),
        ({}, "an empty object"),
        ({"rows": [1]}, 'keys "rows"'),
        ({"data": [1], "inputs": [2]}, 'keys "data", "inputs"'),
        ({"data": [1], "params": {}}, 'keys "data", "params"'),
        ({k: 0 for k in "abcdefg"}, 'keys "a", "b", "c", "d", "e" and 2 more'),
    ],
)
def test_other_bodies_are_refused_naming_the_accepted_keys(body: Any, got: str) -> None:
    with pytest.raises(BadPayload) as caught:
        parse_payload(body)
    assert str(caught.value) == EXPECTED + got


@pytest.mark.parametrize(
    ("split", "message"),
    [
        ([[1, 2]], SPLIT),
        ({"data": [[1]]}, SPLIT),
        ({"columns": ["a"], "data": [[1]], "dtypes": ["int"]}, SPLIT),
        (
            {"columns": ["a", "b"], "data": [[1, 2], [3]]},
            '"dataframe_split" row 1 must be an array of 2 values, one per column',
        ),
        (
            {"columns": ["a"], "data": [[1], [2]], "index": [0]},
            '"dataframe_split" index must be an array of 2 labels (strings or numbers)',
        ),
        (
            {"columns": ["a"], "data": [[1]], "index": [{}]},
            '"dataframe_split" index must be an array of 1 labels (strings or numbers)',
        ),
        (
            {"columns": [{}, "b"], "data": []},
            '"dataframe_split" columns must be names: strings or numbers',
        ),
    ],
)
def test_malformed_dataframe_split_is_refused(split: Any, message: str) -> None:
    with pytest.raises(BadPayload) as caught:
        parse_payload({"dataframe_split": split})
    assert str(caught.value) == message


@pytest.mark.parametrize("records", [{"a": 1}, [{"a": 1}, [2]]])
def test_malformed_dataframe_records_are_refused(records: Any) -> None:
    with pytest.raises(BadPayload) as caught:
        parse_payload({"dataframe_records": records})
    assert str(caught.value) == '"dataframe_records" must be an array of objects, one per row'


# to_json


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([1, 2.5, "a", None, True], b'[1,2.5,"a",null,true]'),
        ({"b": [1], "a": {"c": False}}, b'{"b":[1],"a":{"c":false}}'),
        ((1, 2), b"[1,2]"),
        ({3, 1, 2}, b"[1,2,3]"),
        ("already json: [1]", b'"already json: [1]"'),
        (b'{"a": 1}', b'"{\\"a\\": 1}"'),
        ("é", b'"\\u00e9"'),
        (math.nan, b"NaN"),
        (datetime.date(2024, 5, 1), b'"2024-05-01"'),
        (datetime.datetime(2024, 5, 1, 12, 30), b'"2024-05-01T12:30:00"'),
    ],
)
def test_plain_values_encode_compactly(value: Any, expected: bytes) -> None:
    assert to_json(value) == expected


def test_unsortable_sets_encode_in_any_order() -> None:
    assert sorted(json.loads(to_json({1, "a"})), key=str) == [1, "a"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.array([[1, 2], [3, 4]]), b"[[1,2],[3,4]]"),
        (np.array([0.5], dtype=np.float32), b"[0.5]"),
        (np.int64(7), b"7"),
        (np.float32(0.25), b"0.25"),
        (np.float64(0.1), b"0.1"),
        (np.bool_(True), b"true"),
        ({"scores": np.array([1, 2])}, b'{"scores":[1,2]}'),
        (pd.Series([1.5, 2.5]), b"[1.5,2.5]"),
        (pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}), b'[{"a":1,"b":"x"},{"a":2,"b":"y"}]'),
        (pd.Timestamp("2024-05-01T00:00:00"), b'"2024-05-01T00:00:00"'),
    ],
)
def test_numpy_and_pandas_values_encode_as_plain_json(value: Any, expected: bytes) -> None:
    assert to_json(value) == expected


@pytest.mark.parametrize("value", [object(), {"a": {1, 2}.__iter__()}, b"\xff"])
def test_values_json_cannot_hold_are_a_bad_result(value: Any) -> None:
    with pytest.raises(BadResult) as caught:
        to_json(value)
    assert str(caught.value) == (
        "the scoring script's run() returned a value that cannot be encoded as JSON; return "
        "lists, dicts, numbers, strings, numpy arrays or pandas DataFrames"
    )


# loading scripts


def test_load_script_imports_then_calls_init(tmp_path: Path) -> None:
    script_path, model = write_deployment(tmp_path)
    script = load_script(script_path, model)
    assert script.ready
    assert script.name == "score.py"
    assert script.run([1, 2]) == [2, 4]
    assert script.score(b'{"data": [1, 2]}') == b"[2,4]"


def test_model_dir_is_set_before_import_and_for_azure_scripts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code = """
        import os
        seen = (os.environ["MLFORM_MODEL_DIR"], os.environ["AZUREML_MODEL_DIR"])

        def run(data):
            return data
    """
    script_path, _ = write_deployment(tmp_path, code)
    monkeypatch.chdir(tmp_path)  # a relative model folder is made absolute
    script = load_script(Path("score.py"), Path("model"))
    model = str(tmp_path / "model")
    assert script.module.seen == (model, model)
    assert os.environ["MLFORM_MODEL_DIR"] == os.environ["AZUREML_MODEL_DIR"] == model
    assert script.path == script_path


def test_azureml_model_dir_is_the_model_as_azure_mounts_it(tmp_path: Path) -> None:
    code = """
        import os
        seen = (os.environ["MLFORM_MODEL_DIR"], os.environ["AZUREML_MODEL_DIR"])

        def run(raw_data):
            return raw_data
    """
    script_path, _ = write_deployment(tmp_path, code)
    mounted = tmp_path / "azureml-models" / "regression" / "1"
    (mounted / "model").mkdir(parents=True)
    script = load_script(script_path, mounted / "model", mounted)
    assert script.module.seen == (str(mounted / "model"), str(mounted))


# What run() receives: the body's text, as on Azure ML, unless the script asks otherwise


AZURE_SAMPLE = """
    import json
    import logging

    def init():
        logging.info("Init complete")

    def run(raw_data):
        data = json.loads(raw_data)["data"]
        return [sum(row) for row in data]
"""


def test_an_undecorated_run_gets_the_raw_body_as_azure_gives_it(tmp_path: Path) -> None:
    script = load_script(*write_deployment(tmp_path, AZURE_SAMPLE))
    assert script.input == "raw"
    assert script.body_schema() == {"description": "any text: run() gets the body as it was sent"}
    assert script.score(b'{"data": [[1, 2], [3, 4]]}') == b"[3,7]"
    echo = load_script(*write_deployment(tmp_path, "def run(raw_data):\n    return raw_data\n"))
    body = '{"data": [1], "other": "é"}'.encode()
    assert echo.score(body) == json.dumps(body.decode()).encode("ascii")
    assert echo.score(b"not json at all") == b'"not json at all"'  # the script judges


def test_a_raw_body_that_is_not_utf8_is_bad_payload(tmp_path: Path) -> None:
    script = load_script(*write_deployment(tmp_path, AZURE_SAMPLE))
    with pytest.raises(BadPayload) as caught:
        script.score(b"\xff\xfe")
    assert str(caught.value).startswith("the request body is not UTF-8 text: ")


def test_bad_payload_raised_by_run_is_the_scripts_word_to_the_client(tmp_path: Path) -> None:
    code = """
        from mlform.serving.scoring import BadPayload

        def run(raw_data):
            if raw_data == "flowers":
                raise ValueError("a bug")
            raise BadPayload("send flowers")
    """
    script = load_script(*write_deployment(tmp_path, code))
    with pytest.raises(BadPayload) as refused:
        script.score(b"weeds")
    with pytest.raises(RunFailed) as failed:
        script.score(b"flowers")
    assert str(refused.value) == "send flowers"
    assert str(failed.value) == "the scoring script raised ValueError; see the deployment's log"


def test_the_marker_asks_for_the_parsed_payload(tmp_path: Path) -> None:
    code = """
        MLFORM_PARSED_INPUT = True

        def run(data):
            return {"type": type(data).__name__, "data": data}
    """
    script = load_script(*write_deployment(tmp_path, code))
    assert script.input == "parsed"
    assert script.body_schema() is None  # the payloads the OpenAPI document lists
    assert script.score(b'{"instances": [1, 2]}') == b'{"type":"list","data":[1,2]}'
    with pytest.raises(BadPayload):
        script.score(b"[1, 2]")


def test_a_marker_that_is_not_true_leaves_the_raw_mode(tmp_path: Path) -> None:
    code = "MLFORM_PARSED_INPUT = 'yes'\n\ndef run(raw_data):\n    return raw_data\n"
    assert load_script(*write_deployment(tmp_path, code)).input == "raw"


SCHEMA_DECORATED = """
    import numpy as np
    from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType,
    )
    from inference_schema.schema_decorators import input_schema, output_schema


    @input_schema("data", NumpyParameterType(np.array([[1.0, 2.0, 3.0]])))
    @input_schema("scale", StandardPythonParameterType(1.0))
    @output_schema(StandardPythonParameterType([6.0]))
    def run(data, scale=2.0):
        assert isinstance(data, np.ndarray)
        return (data.sum(axis=1) * scale).tolist()
"""


def test_a_run_decorated_with_inference_schema_gets_its_parameters(tmp_path: Path) -> None:
    script = load_script(*write_deployment(tmp_path, SCHEMA_DECORATED))
    assert script.input == "schema"
    assert script.body_schema() == {
        "type": "object",
        "properties": {"data": {}, "scale": {}},
        "required": ["data"],
    }
    assert script.score(b'{"data": [[1, 2, 3], [4, 5, 6]]}') == b"[12.0,30.0]"
    assert script.score(b'{"data": [[1, 2, 3]], "scale": 1}') == b"[6.0]"
    with pytest.raises(BadPayload) as caught:
        script.score(b'{"rows": [[1, 2, 3]]}')
    assert str(caught.value) == (
        'the request body has no "data"; run() takes "data", "scale", each under its own key'
    )
    with pytest.raises(BadPayload) as caught:
        script.score(b"[[1, 2, 3]]")
    assert str(caught.value) == (
        'the request body must be a JSON object with the keys "data", "scale" (run()\'s '
        "parameters); got an array"
    )
    with pytest.raises(BadPayload) as caught:
        script.score(b'{"data": ')
    assert str(caught.value).startswith("the request body is not valid JSON")


def test_the_scripts_folder_is_first_on_sys_path(tmp_path: Path) -> None:
    code = """
        from score_helper import triple

        def run(data):
            return triple(data)
    """
    script_path, model = write_deployment(tmp_path, code)
    (tmp_path / "score_helper.py").write_text("def triple(x):\n    return 3 * x\n")
    assert load_script(script_path, model).run(2) == 6
    assert sys.path[0] == str(tmp_path)


def test_a_script_without_init_is_ready_once_loaded(tmp_path: Path) -> None:
    script_path, model = write_deployment(tmp_path, "def run(data):\n    return data\n")
    assert load_script(script_path, model).ready


def test_import_script_does_not_call_init(tmp_path: Path) -> None:
    script = import_script(*write_deployment(tmp_path))
    assert not script.ready
    with pytest.raises(NotReady) as caught:
        script.score(b'{"data": [1]}')
    assert str(caught.value) == "score.py is not ready: its init() has not completed"


def test_init_raising_is_script_failed_naming_script_and_exception(tmp_path: Path) -> None:
    code = """
        def init():
            raise ValueError("no model in /models/x")

        def run(data):
            return data
    """
    with pytest.raises(ScriptFailed) as caught:
        load_script(*write_deployment(tmp_path, code))
    assert str(caught.value) == "init() of score.py failed: ValueError: no model in /models/x"
    assert isinstance(caught.value.__cause__, ValueError)


def test_a_script_that_fails_to_import_is_script_failed(tmp_path: Path) -> None:
    code = "import score_no_such_package\n\ndef run(data):\n    return data\n"
    with pytest.raises(ScriptFailed) as caught:
        import_script(*write_deployment(tmp_path, code))
    assert str(caught.value) == (
        "importing score.py failed: ModuleNotFoundError: No module named 'score_no_such_package'"
    )


def test_a_script_without_run_is_script_failed(tmp_path: Path) -> None:
    with pytest.raises(ScriptFailed) as caught:
        import_script(*write_deployment(tmp_path, "def init():\n    pass\n"))
    assert str(caught.value) == (
        "score.py defines no run(data) function; a scoring script needs one "
        "(and may define init() to load the model)"
    )


def test_a_missing_script_is_script_not_found(tmp_path: Path) -> None:
    with pytest.raises(ScriptNotFound) as caught:
        import_script(tmp_path / "nope.py", tmp_path)
    assert str(caught.value) == f"scoring script {tmp_path / 'nope.py'} does not exist"


def test_score_reports_run_raising_by_type_only(tmp_path: Path) -> None:
    script = load_script(*write_deployment(tmp_path))
    with pytest.raises(RunFailed) as caught:
        script.score(b'{"data": "boom"}')
    assert str(caught.value) == ("the scoring script raised ValueError; see the deployment's log")
    assert str(caught.value.__cause__) == "secret detail: boom"


def test_score_refuses_invalid_json(tmp_path: Path) -> None:
    script = load_script(*write_deployment(tmp_path))
    with pytest.raises(BadPayload) as caught:
        script.score(b"{not json")
    assert str(caught.value) == (
        "the request body is not valid JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )


def test_scripts_see_dataframes_from_mlflow_payloads(tmp_path: Path) -> None:
    script = load_script(*write_deployment(tmp_path))
    body = b'{"dataframe_split": {"columns": ["a"], "data": [[1], [2]]}}'
    assert script.score(body) == b'[{"a":2},{"a":4}]'
