"""Parameters, IncludeFiles and JSONType: declaration, conversion, resolution, descriptors."""

from __future__ import annotations

import datetime
import json
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asyncflow._errors import FlowValidationError, ParameterError
from asyncflow._spec._names import RESERVED_NAMES
from asyncflow._spec._params import IncludeFile, JSONType, Parameter
from asyncflow._spec._resolve import Resolved, parameters_of, resolve_parameters


class Host:
    """Stands in for FlowSpec: answers the descriptor's hook with a marked value."""

    def _af_parameter_value(self, attr: str) -> Any:
        return f"value of {attr}"


class TrainFlow(Host):
    alpha = Parameter("alpha", default=0.01, help="learning rate")
    config = Parameter("config", type=JSONType, default='{"k": 1}')
    data = IncludeFile("data", default="data.csv")
    epochs = Parameter("epochs", type=int, required=True)


def bad(param: Parameter, value: Any) -> ParameterError:
    with pytest.raises(ParameterError) as info:
        param.convert(value, flow="TrainFlow")
    return info.value


def make_flow(**attrs: Any) -> type:
    return type("MadeFlow", (Host,), attrs)


# --- type inference and explicit types -------------------------------------------------


@pytest.mark.parametrize(
    ("default", "expected"),
    [(True, bool), (False, bool), (3, int), (0.5, float), ("x", str), (None, str)],
    ids=["true", "false", "int", "float", "str", "none"],
)
def test_type_is_inferred_from_the_default(default: Any, expected: type) -> None:
    assert Parameter("p", default=default).type is expected


def test_no_default_and_no_type_means_str() -> None:
    param = Parameter("p")
    assert param.type is str
    assert not param.has_default
    assert param.convert("0.5", flow="F") == "0.5"


def test_a_dict_default_without_type_asks_for_jsontype() -> None:
    with pytest.raises(FlowValidationError, match="JSONType"):
        Parameter("p", default={"a": 1})


def test_a_type_that_is_not_callable_is_refused() -> None:
    with pytest.raises(FlowValidationError, match="type=3"):
        Parameter("p", type=3)


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (int, "42", 42),
        (int, " -7 ", -7),
        (int, "1_000", 1000),
        (float, "1e-3", 0.001),
        (float, "2", 2.0),
        (str, "hello", "hello"),
    ],
)
def test_cli_strings_are_converted(kind: type, text: str, expected: Any) -> None:
    value = Parameter("p", type=kind).convert(text, flow="F")
    assert value == expected
    assert type(value) is kind


def test_python_values_are_converted() -> None:
    assert type(Parameter("p", type=float).convert(2, flow="F")) is float
    assert Parameter("p", type=int).convert(np.int64(5), flow="F") == 5
    assert type(Parameter("p", type=int).convert(np.int64(5), flow="F")) is int
    assert type(Parameter("p", type=float).convert(np.float32(0.5), flow="F")) is float


def test_none_stays_none() -> None:
    for kind in (str, int, float, bool, JSONType):
        assert Parameter("p", type=kind).convert(None, flow="F") is None


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "Yes", "on", " on "])
def test_bool_true_words(word: str) -> None:
    assert Parameter("p", type=bool).convert(word, flow="F") is True


@pytest.mark.parametrize("word", ["false", "False", "0", "no", "NO", "off"])
def test_bool_false_words(word: str) -> None:
    assert Parameter("p", type=bool).convert(word, flow="F") is False


def test_bool_rejects_other_words_and_numbers() -> None:
    flag = Parameter("flag", type=bool)
    assert "true/false" in str(bad(flag, "maybe"))
    assert "pass True or False" in str(bad(flag, 1))
    assert "true/false" in str(bad(flag, ""))


def test_int_refuses_scientific_notation_and_says_why() -> None:
    message = str(bad(Parameter("n", type=int), "1e3"))
    assert "scientific notation" in message
    assert "write 1000" in message
    assert "type=float" in message


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1.5", "decimal point"),
        ("abc", "not a whole number"),
        ("inf", "not a whole number"),
        (3.0, "of type float"),
        (True, "bools are not numbers"),
        ([1], "of type list"),
    ],
    ids=["fraction", "word", "inf", "float", "bool", "list"],
)
def test_int_refusals(value: Any, words: str) -> None:
    assert words in str(bad(Parameter("n", type=int), value))


@pytest.mark.parametrize(
    ("value", "words"),
    [("abc", "not a number"), (False, "bools are not numbers"), ("", "not a number")],
)
def test_float_refusals(value: Any, words: str) -> None:
    assert words in str(bad(Parameter("x", type=float), value))


def test_str_refuses_other_python_values() -> None:
    assert "of type int, not str" in str(bad(Parameter("s"), 3))


# --- callable types --------------------------------------------------------------------


def parse_date(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def test_a_callable_type_converts_strings() -> None:
    param = Parameter("when", type=parse_date)
    assert param.convert("2024-05-01", flow="F") == datetime.date(2024, 5, 1)
    assert Parameter("where", type=Path).convert("a/b", flow="F") == Path("a/b")


def test_a_callable_type_keeps_python_values() -> None:
    day = datetime.date(2024, 5, 1)
    assert Parameter("when", type=parse_date).convert(day, flow="F") is day


def test_a_callable_type_error_is_wrapped() -> None:
    error = bad(Parameter("when", type=parse_date), "yesterday")
    assert "parse_date" in str(error)
    assert "'yesterday'" in str(error)
    assert isinstance(error.__cause__, ValueError)


# --- JSONType --------------------------------------------------------------------------


def test_json_from_a_string() -> None:
    param = Parameter("config", type=JSONType)
    assert param.convert('{"k": [1, 2.5, null]}', flow="F") == {"k": [1, 2.5, None]}
    assert param.convert('"text"', flow="F") == "text"


def test_json_from_python_is_kept_as_is() -> None:
    value = {"k": [1, 2]}
    assert Parameter("config", type=JSONType).convert(value, flow="F") is value


def test_json_instance_marker_works_too() -> None:
    assert Parameter("config", type=JSONType()).type is JSONType


def test_invalid_json_quotes_the_position() -> None:
    error = bad(Parameter("config", type=JSONType), '{"k": 1,\n oops}')
    assert "not valid JSON" in str(error)
    assert "line 2, column 2" in str(error)
    assert isinstance(error.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize("value", [{1, 2}, b"raw", {"k": object()}], ids=["set", "bytes", "obj"])
def test_json_refuses_values_json_cannot_write(value: Any) -> None:
    assert "cannot be written as JSON" in str(bad(Parameter("config", type=JSONType), value))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=8,
)


@given(JSON_VALUES)
def test_json_strings_round_trip(value: Any) -> None:
    param = Parameter("config", type=JSONType)
    assert param.convert(json.dumps(value), flow="F") == value


@given(st.integers())
def test_int_strings_round_trip(value: int) -> None:
    assert Parameter("n", type=int).convert(str(value), flow="F") == value


@given(st.floats(allow_nan=False))
def test_float_strings_round_trip(value: float) -> None:
    assert Parameter("x", type=float).convert(repr(value), flow="F") == value


# --- error messages --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("param", "value"),
    [
        (Parameter("n", type=int), "x"),
        (Parameter("flag", type=bool), "x"),
        (Parameter("config", type=JSONType), "{"),
        (Parameter("when", type=parse_date), "x"),
        (IncludeFile("data"), 3),
    ],
    ids=["int", "bool", "json", "callable", "file"],
)
def test_every_message_names_flow_parameter_value_and_fix(param: Parameter, value: Any) -> None:
    error = bad(param, value)
    message = str(error)
    assert error.name == param.name
    assert "flow TrainFlow" in message
    assert f"'{param.name}'" in message
    assert repr(value) in message
    assert "; " in message
    assert message.endswith(".")
    assert isinstance(error, ValueError)
    assert str(pickle.loads(pickle.dumps(error))) == message


def test_long_values_are_shortened_in_messages() -> None:
    message = str(bad(Parameter("n", type=int), "9" * 50 + "x" * 500))
    assert len(message) < 300
    assert "..." in message


# --- resolution ------------------------------------------------------------------------


def test_resolve_applies_defaults_and_converts(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    resolved = resolve_parameters(TrainFlow, "TrainFlow", {"epochs": "3"})
    assert resolved == Resolved(
        values={"alpha": 0.01, "config": {"k": 1}, "epochs": 3},
        files={"data": str(tmp_path / "data.csv")},
    )


def test_resolve_uses_given_values(tmp_path: Path) -> None:
    given = {"alpha": 1, "config": {"x": 2}, "data": tmp_path / "in.txt", "epochs": 10}
    resolved = resolve_parameters(TrainFlow, "TrainFlow", given)
    assert resolved.values == {"alpha": 1.0, "config": {"x": 2}, "epochs": 10}
    assert resolved.files == {"data": str(tmp_path / "in.txt")}


def test_none_given_means_the_default() -> None:
    resolved = resolve_parameters(TrainFlow, "TrainFlow", {"alpha": None, "epochs": 1})
    assert resolved.values["alpha"] == 0.01


def test_missing_required_parameter() -> None:
    with pytest.raises(ParameterError) as info:
        resolve_parameters(TrainFlow, "TrainFlow", {"alpha": 0.1})
    assert info.value.name == "epochs"
    assert "TrainFlow requires Parameter 'epochs' (int)" in str(info.value)
    assert "flow.run(epochs=...)" in str(info.value)


def test_required_is_satisfied_by_a_default() -> None:
    flow = make_flow(n=Parameter("n", default=2, required=True))
    assert resolve_parameters(flow, "F", {}).values == {"n": 2}


def test_optional_without_default_is_none() -> None:
    flow = make_flow(n=Parameter("n", type=int), data=IncludeFile("data"))
    assert resolve_parameters(flow, "F", {}) == Resolved(values={"n": None, "data": None}, files={})


def test_required_include_file_without_path() -> None:
    flow = make_flow(data=IncludeFile("data", required=True))
    with pytest.raises(ParameterError, match=r"requires IncludeFile 'data' \(a file path\)"):
        resolve_parameters(flow, "F", {})


def test_unknown_names_are_listed_with_the_valid_ones() -> None:
    with pytest.raises(ParameterError) as info:
        resolve_parameters(TrainFlow, "TrainFlow", {"alpa": 1, "zzz": 2, "epochs": 1})
    message = str(info.value)
    assert info.value.name == "alpa"
    assert "'alpa' (did you mean 'alpha'?)" in message
    assert "'zzz'" in message
    assert "valid parameters: alpha, config, data, epochs" in message


def test_parameters_are_keyed_by_name_not_attribute() -> None:
    flow = make_flow(lr=Parameter("learning_rate", default=0.1))
    assert resolve_parameters(flow, "F", {"learning_rate": 0.5}).values == {"lr": 0.5}
    with pytest.raises(ParameterError, match="valid parameters: learning_rate"):
        resolve_parameters(flow, "F", {"lr": 0.5})


def test_a_flow_without_parameters() -> None:
    with pytest.raises(ParameterError, match="takes no parameters"):
        resolve_parameters(Host, "F", {"x": 1})
    assert resolve_parameters(Host, "F", {}) == Resolved(values={}, files={})


def test_a_bad_default_is_reported_as_such() -> None:
    flow = make_flow(n=Parameter("n", type=int, default="many"))
    with pytest.raises(ParameterError, match=r"has default 'many'.*correct default="):
        resolve_parameters(flow, "F", {})
    assert resolve_parameters(flow, "F", {"n": "4"}).values == {"n": 4}


def test_conversion_errors_in_resolution_name_the_flow() -> None:
    with pytest.raises(ParameterError, match="Parameter 'epochs' of flow Train was given"):
        resolve_parameters(TrainFlow, "Train", {"epochs": "ten"})


# --- IncludeFile -----------------------------------------------------------------------


def test_include_file_path_is_made_absolute(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    data = IncludeFile("data")
    assert data.is_file
    assert data.convert("sub/x.csv", flow="F") == os.path.join(tmp_path, "sub", "x.csv")
    assert data.convert(Path("/abs/y.csv"), flow="F") == os.path.abspath("/abs/y.csv")


@pytest.mark.parametrize("value", [3, b"bytes.csv", ""], ids=["int", "bytes", "empty"])
def test_include_file_refuses_non_paths(value: Any) -> None:
    assert "not a path" in str(bad(IncludeFile("data"), value))


def test_include_file_default_is_kept_relative() -> None:
    assert IncludeFile("data", default=Path("d.csv")).default == "d.csv"


def test_decode_text_and_bytes() -> None:
    raw = "héllo\n".encode()
    assert IncludeFile("data").decode_content(raw, path="p", flow="F") == "héllo\n"
    assert IncludeFile("data", is_text=False).decode_content(raw, path="p", flow="F") == raw
    latin = IncludeFile("data", encoding="latin-1")
    assert latin.decode_content(b"\xe9", path="p", flow="F") == "é"


def test_decode_error_names_parameter_path_and_encoding() -> None:
    with pytest.raises(ParameterError) as info:
        IncludeFile("data").decode_content(b"ok \xff", path="/in/d.csv", flow="TrainFlow")
    message = str(info.value)
    assert info.value.name == "data"
    for words in ("IncludeFile 'data'", "TrainFlow", "/in/d.csv", "utf-8", "byte 3"):
        assert words in message
    assert "encoding=" in message
    assert "is_text=False" in message
    assert isinstance(info.value.__cause__, UnicodeDecodeError)


def test_include_file_definition_errors() -> None:
    with pytest.raises(FlowValidationError, match="unknown encoding='klingon'"):
        IncludeFile("data", encoding="klingon")
    with pytest.raises(FlowValidationError, match="default=3"):
        IncludeFile("data", default=3)  # type: ignore[arg-type]


# --- describe --------------------------------------------------------------------------


def test_describe_is_json_able() -> None:
    described = [p.describe() for p in parameters_of(TrainFlow).values()]
    assert json.loads(json.dumps(described)) == described
    assert described[0] == {
        "name": "alpha",
        "attr": "alpha",
        "kind": "parameter",
        "type": "float",
        "default": 0.01,
        "help": "learning rate",
        "required": False,
    }
    assert described[1]["type"] == "json"
    assert described[2] == {
        "name": "data",
        "attr": "data",
        "kind": "file",
        "type": "str",
        "default": "data.csv",
        "help": None,
        "required": False,
        "is_text": True,
        "encoding": "utf-8",
        "max_bytes": 256 << 20,
    }
    assert described[3]["default"] is None


def test_describe_a_default_json_cannot_hold() -> None:
    param = Parameter("when", type=parse_date, default=datetime.date(2024, 1, 2))
    described = param.describe()
    assert described["type"] == "parse_date"
    assert described["default"] == "datetime.date(2024, 1, 2)"
    assert IncludeFile("blob", is_text=False).describe()["type"] == "bytes"


# --- descriptor ------------------------------------------------------------------------


def test_class_access_returns_the_parameter() -> None:
    assert isinstance(TrainFlow.alpha, Parameter)
    assert TrainFlow.alpha.name == "alpha"
    assert TrainFlow.alpha.attr == "alpha"


def test_instance_access_asks_the_flow() -> None:
    flow = make_flow(lr=Parameter("learning_rate", default=0.1))()
    assert flow.lr == "value of lr"
    assert TrainFlow().data == "value of data"


def test_parameters_are_read_only() -> None:
    flow = TrainFlow()
    with pytest.raises(AttributeError, match="Parameter 'alpha' of flow TrainFlow is read-only"):
        flow.alpha = 0.5
    with pytest.raises(AttributeError, match="read-only"):
        del flow.data
    assert "alpha" not in vars(flow)


def test_repr() -> None:
    assert repr(TrainFlow.alpha) == "Parameter('alpha', default=0.01)"
    assert repr(TrainFlow.data) == "IncludeFile('data', default='data.csv')"


# --- parameters_of ---------------------------------------------------------------------


class Child(TrainFlow):
    beta = Parameter("beta", default=2)
    alpha = Parameter("alpha", default=0.5)  # redefined: wins, keeps its place
    config = None  # hides the inherited parameter


def test_parameters_of_walks_the_mro_in_definition_order() -> None:
    found = parameters_of(Child)
    assert list(found) == ["alpha", "data", "epochs", "beta"]
    assert found["alpha"].default == 0.5
    assert list(parameters_of(TrainFlow)) == ["alpha", "config", "data", "epochs"]


def test_parameters_of_with_diamond_inheritance() -> None:
    class Left(Host):
        a = Parameter("a")

    class Right(Host):
        b = Parameter("b")

    class Both(Left, Right):
        c = Parameter("c")

    assert list(parameters_of(Both)) == ["b", "a", "c"]


def test_two_parameters_with_one_name_clash() -> None:
    class Sub(TrainFlow):
        rate = Parameter("alpha")

    with pytest.raises(FlowValidationError, match=r"at Sub.rate has the name of .*TrainFlow.alpha"):
        parameters_of(Sub)


def test_a_name_that_is_another_parameters_attribute_clashes() -> None:
    flow = make_flow(a=Parameter("b"), b=Parameter("c"))
    with pytest.raises(FlowValidationError, match=r"named like the attribute MadeFlow\.b"):
        parameters_of(flow)


@pytest.mark.parametrize(
    ("attrs", "words"),
    [
        ({"x": Parameter("a-b")}, "name 'a-b', which is not a Python identifier"),
        ({"x": Parameter("class")}, "name 'class', which is not a Python identifier"),
        ({"x": Parameter("")}, "not a Python identifier"),
        ({"x": Parameter(3)}, "name 3, which is not a Python identifier"),  # type: ignore[arg-type]
        ({"x": Parameter("_x")}, "name '_x', which starts with '_'"),
        ({"_x": Parameter("x")}, "attribute '_x', which starts with '_'"),
        ({"x": Parameter("next")}, "name 'next', which FlowSpec uses"),
        ({"index": Parameter("x")}, "attribute 'index', which FlowSpec uses"),
    ],
    ids=[
        "dash",
        "keyword",
        "empty",
        "not-str",
        "private",
        "private-attr",
        "reserved",
        "reserved-attr",
    ],
)
def test_bad_names(attrs: dict[str, Parameter], words: str) -> None:
    with pytest.raises(FlowValidationError, match=words):
        parameters_of(make_flow(**attrs))


@pytest.mark.parametrize("reserved", sorted(RESERVED_NAMES))
def test_every_reserved_name_is_refused(reserved: str) -> None:
    with pytest.raises(FlowValidationError, match="FlowSpec uses"):
        parameters_of(make_flow(x=Parameter(reserved)))


def test_one_parameter_object_bound_twice() -> None:
    shared = Parameter("p")
    with pytest.raises(FlowValidationError, match="is the object bound to 'p'"):
        parameters_of(make_flow(p=shared, q=shared))


def test_a_parameter_set_after_class_creation() -> None:
    flow = make_flow()
    flow.late = Parameter("late")  # type: ignore[attr-defined]
    with pytest.raises(FlowValidationError, match="was set late"):
        parameters_of(flow)


def test_resolution_reports_definition_errors() -> None:
    with pytest.raises(FlowValidationError):
        resolve_parameters(make_flow(x=Parameter("_x")), "F", {})
