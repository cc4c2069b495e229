"""The graph built from a flow class: structure of every common shape, parsing, renderings."""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncflow._spec._flowgraph import FlowGraph, Node, NodeKind
from asyncflow._spec._graph import build_graph
from asyncflow._spec._step import step
from tests.flows import graph_shapes as shapes
from tests.flows.graph_shapes import passthrough

L, S, F, E = NodeKind.LINEAR, NodeKind.SPLIT, NodeKind.FOREACH, NodeKind.END

# name: (kind, out, in_, join_kind, closes, matching_join, foreach_depth, split_parents)
Row = tuple[NodeKind, tuple[str, ...], tuple[str, ...], Any, Any, Any, int, tuple[str, ...]]

EXPECTED: dict[str, dict[str, Row]] = {
    "LinearFlow": {
        "start": (L, ("middle",), (), None, None, None, 0, ()),
        "middle": (L, ("end",), ("start",), None, None, None, 0, ()),
        "end": (E, (), ("middle",), None, None, None, 0, ()),
    },
    "BranchFlow": {
        "start": (S, ("a", "b", "c"), (), None, None, "join", 0, ()),
        "a": (L, ("join",), ("start",), None, None, None, 0, ("start",)),
        "b": (L, ("join",), ("start",), None, None, None, 0, ("start",)),
        "c": (L, ("join",), ("start",), None, None, None, 0, ("start",)),
        "join": (L, ("end",), ("a", "b", "c"), "static", "start", None, 0, ()),
        "end": (E, (), ("join",), None, None, None, 0, ()),
    },
    "MultiStepBranchFlow": {
        "start": (S, ("long1", "short"), (), None, None, "join", 0, ()),
        "short": (L, ("join",), ("start",), None, None, None, 0, ("start",)),
        "long2": (L, ("long3",), ("long1",), None, None, None, 0, ("start",)),
        "long3": (L, ("join",), ("long2",), None, None, None, 0, ("start",)),
        "long1": (L, ("long2",), ("start",), None, None, None, 0, ("start",)),
        # next() order (long1's branch first), not definition order (short first)
        "join": (L, ("end",), ("long3", "short"), "static", "start", None, 0, ()),
        "end": (E, (), ("join",), None, None, None, 0, ()),
    },
    "NestedBranchFlow": {
        "start": (S, ("outer_b", "outer_a"), (), None, None, "outer_join", 0, ()),
        "outer_a": (S, ("inner_x", "inner_y"), ("start",), None, None, "inner_join", 0, ("start",)),
        "inner_x": (L, ("inner_join",), ("outer_a",), None, None, None, 0, ("start", "outer_a")),
        "inner_y": (L, ("inner_join",), ("outer_a",), None, None, None, 0, ("start", "outer_a")),
        "inner_join": (
            L,
            ("outer_join",),
            ("inner_x", "inner_y"),
            "static",
            "outer_a",
            None,
            0,
            ("start",),
        ),
        "outer_b": (L, ("outer_join",), ("start",), None, None, None, 0, ("start",)),
        "outer_join": (L, ("end",), ("outer_b", "inner_join"), "static", "start", None, 0, ()),
        "end": (E, (), ("outer_join",), None, None, None, 0, ()),
    },
    "ForeachFlow": {
        "start": (F, ("body",), (), None, None, "join", 0, ()),
        "body": (L, ("join",), ("start",), None, None, None, 1, ("start",)),
        "join": (L, ("end",), ("body",), "foreach", "start", None, 0, ()),
        "end": (E, (), ("join",), None, None, None, 0, ()),
    },
    "NestedForeachFlow": {
        "start": (F, ("mid",), (), None, None, "outer_join", 0, ()),
        "mid": (F, ("leaf",), ("start",), None, None, "inner_join", 1, ("start",)),
        "leaf": (L, ("inner_join",), ("mid",), None, None, None, 2, ("start", "mid")),
        "inner_join": (L, ("outer_join",), ("leaf",), "foreach", "mid", None, 1, ("start",)),
        "outer_join": (L, ("end",), ("inner_join",), "foreach", "start", None, 0, ()),
        "end": (E, (), ("outer_join",), None, None, None, 0, ()),
    },
    "SplitInForeachFlow": {
        "start": (F, ("body",), (), None, None, "join", 0, ()),
        "body": (S, ("left", "right"), ("start",), None, None, "body_join", 1, ("start",)),
        "left": (L, ("body_join",), ("body",), None, None, None, 1, ("start", "body")),
        "right": (L, ("body_join",), ("body",), None, None, None, 1, ("start", "body")),
        "body_join": (L, ("join",), ("left", "right"), "static", "body", None, 1, ("start",)),
        "join": (L, ("end",), ("body_join",), "foreach", "start", None, 0, ()),
        "end": (E, (), ("join",), None, None, None, 0, ()),
    },
    "MultiStepForeachFlow": {
        "start": (F, ("first",), (), None, None, "join", 0, ()),
        "first": (L, ("second",), ("start",), None, None, None, 1, ("start",)),
        "second": (L, ("third",), ("first",), None, None, None, 1, ("start",)),
        "third": (L, ("join",), ("second",), None, None, None, 1, ("start",)),
        "join": (L, ("end",), ("third",), "foreach", "start", None, 0, ()),
        "end": (E, (), ("join",), None, None, None, 0, ()),
    },
    "ForeachInBranchFlow": {
        "start": (S, ("fan", "plain"), (), None, None, "join", 0, ()),
        "fan": (F, ("each",), ("start",), None, None, "fan_join", 0, ("start",)),
        "each": (L, ("fan_join",), ("fan",), None, None, None, 1, ("start", "fan")),
        "fan_join": (L, ("join",), ("each",), "foreach", "fan", None, 0, ("start",)),
        "plain": (L, ("join",), ("start",), None, None, None, 0, ("start",)),
        "join": (L, ("end",), ("fan_join", "plain"), "static", "start", None, 0, ()),
        "end": (E, (), ("join",), None, None, None, 0, ()),
    },
}


def row(node: Node) -> Row:
    return (
        node.kind,
        node.out,
        node.in_,
        node.join_kind,
        node.closes,
        node.matching_join,
        node.foreach_depth,
        node.split_parents,
    )


@pytest.mark.parametrize("flow_name", list(EXPECTED))
def test_shape(flow_name: str) -> None:
    graph = build_graph(getattr(shapes, flow_name))
    assert graph.name == flow_name
    assert {node.name: row(node) for node in graph} == EXPECTED[flow_name]
    # definition (source) order
    assert list(graph.nodes) == list(EXPECTED[flow_name])
    for node in graph:
        assert node.is_join == (node.join_kind is not None)
        assert (node.foreach_var is not None) == (node.kind is F)


def test_foreach_var_and_step_info() -> None:
    graph = build_graph(shapes.NestedForeachFlow)
    assert graph["start"].foreach_var == "outer"
    assert graph["mid"].foreach_var == "inner"
    assert graph["leaf"].foreach_var is None
    assert graph["inner_join"].info.is_join
    assert graph["start"].info.func is shapes.NestedForeachFlow.__dict__["start"]


def test_graph_access_and_immutability() -> None:
    graph = build_graph(shapes.BranchFlow)
    assert len(graph) == 6
    assert "join" in graph and "nope" not in graph
    assert [n.name for n in graph] == ["start", "a", "b", "c", "join", "end"]
    assert graph["a"] is graph.nodes["a"]
    with pytest.raises(KeyError):
        graph["nope"]
    with pytest.raises(TypeError):
        graph.nodes["x"] = graph["a"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        graph["a"].name = "z"  # type: ignore[misc]
    assert isinstance(graph, FlowGraph)


def test_build_caches_nothing() -> None:
    first, second = build_graph(shapes.ForeachFlow), build_graph(shapes.ForeachFlow)
    assert first is not second
    assert first == second


def test_docs_and_lines() -> None:
    graph = build_graph(shapes.LinearFlow)
    assert graph.doc == "A straight line.\n\nThree steps, one after the other."
    assert graph["start"].doc == "Begin."
    assert graph["middle"].doc == "Work on the loop.\n\nSecond paragraph."
    assert graph["end"].doc is None
    source = Path(shapes.__file__).read_text().splitlines()
    for node in graph:
        if node.next_line is not None:
            assert "self.next(" in source[node.next_line - 1]
    assert graph["end"].next_line is None
    assert graph["middle"].info.is_async  # @passthrough on top keeps the step's info


def test_flow_doc_is_not_inherited() -> None:
    class Child(shapes.LinearFlow):
        pass

    assert build_graph(Child).doc is None


def test_base_class_steps_and_overrides() -> None:
    class Base:
        @step
        def start(self) -> None:
            self.next(self.work)

        @step
        def work(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    class Child(Base):
        @step
        def work(self) -> None:
            """Overridden."""
            self.next(self.extra)

        @step
        def extra(self) -> None:
            self.next(self.end)

    graph = build_graph(Child)
    assert list(graph.nodes) == ["start", "work", "end", "extra"]
    assert graph["work"].doc == "Overridden."
    assert graph["work"].out == ("extra",)
    assert graph["end"].in_ == ("extra",)
    assert build_graph(Base)["work"].out == ("end",)


def test_parsing_tolerates_layout() -> None:
    """Indented classes, decorators, async def, docstrings, comments, odd strings."""

    class Outer:
        class Flow:
            @passthrough
            @step
            async def start(self) -> None:
                """A docstring."""
                text = """
a line indented less than the def
"""
                del text
                self.next(  # a comment
                    self.end,
                )
                # a trailing comment

            @step
            def end(me) -> None:
                "Done."

    graph = build_graph(Outer.Flow)
    assert graph["start"].out == ("end",)
    assert graph["start"].info.is_async
    assert graph["end"].doc == "Done."
    lines = Path(__file__).read_text().splitlines()
    assert lines[graph["start"].next_line - 1].strip() == "self.next(  # a comment"  # type: ignore[operator]


def test_return_next_and_other_self_names() -> None:
    class Flow:
        @step
        def start(this) -> None:
            return this.next(this.end)  # type: ignore[func-returns-value]

        @step
        def end(self) -> None:
            pass

    assert build_graph(Flow)["start"].out == ("end",)


def test_to_json() -> None:
    graph = build_graph(shapes.ForeachInBranchFlow)
    data = graph.to_json()
    assert json.loads(json.dumps(data)) == data
    assert data["name"] == "ForeachInBranchFlow"
    assert data["doc"] is None
    steps = {s["name"]: s for s in data["steps"]}
    assert [s["name"] for s in data["steps"]] == list(graph.nodes)
    assert steps["fan"]["kind"] == "foreach"
    assert steps["fan"]["foreach_var"] == "items"
    assert steps["fan"]["matching_join"] == "fan_join"
    assert steps["join"]["in"] == ["fan_join", "plain"]
    assert steps["join"]["is_join"] is True
    assert steps["join"]["join_kind"] == "static"
    assert steps["each"]["foreach_depth"] == 1
    assert steps["each"]["split_parents"] == ["start", "fan"]
    assert steps["start"]["out"] == ["fan", "plain"]
    assert steps["start"]["line"] == graph["start"].info.line
    assert steps["end"]["kind"] == "end"


def test_to_text() -> None:
    text = build_graph(shapes.LinearFlow).to_text()
    assert text.startswith("LinearFlow\n    A straight line.\n")
    assert "    Begin.\n    start --> middle\n" in text
    assert "step middle  (async)" in text
    assert "end (the flow ends here)" in text
    text = build_graph(shapes.ForeachInBranchFlow).to_text()
    assert "start --split--> fan, plain" in text
    assert "fan --foreach(items)--> each" in text
    assert "step fan_join  (joins the foreach of fan)" in text
    assert "step join  (joins the split of start)" in text


def test_to_mermaid() -> None:
    chart = build_graph(shapes.ForeachInBranchFlow).to_mermaid()
    lines = chart.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    s_start(["start"])' in lines
    assert '    s_end(["end"])' in lines
    assert '    s_fan{{"fan"}}' in lines
    assert '    s_plain["plain"]' in lines
    assert "    s_start --> s_fan" in lines
    assert "    s_start --> s_plain" in lines
    assert '    s_fan -->|"foreach(items)"| s_each' in lines
    assert "    s_join --> s_end" in lines
    # "end" is a Mermaid keyword: no node may be called plain `end`
    assert not any(line.split()[-1:] == ["end"] for line in lines)


# --- random nested shapes, written to a real file so their source can be read ---------------

Block = tuple[str, list[Any]]  # ("linear", []), ("branch", [seq, seq, ...]), ("foreach", [seq])


def _blocks(depth: int) -> st.SearchStrategy[list[Block]]:
    linear = st.just(("linear", []))
    if depth == 0:
        return st.lists(linear, min_size=1, max_size=2)
    inner = _blocks(depth - 1)
    branch = st.tuples(st.just("branch"), st.lists(inner, min_size=2, max_size=3))
    foreach = st.tuples(st.just("foreach"), st.lists(inner, min_size=1, max_size=1))
    return st.lists(st.one_of(linear, branch, foreach), min_size=1, max_size=3)


class _Emitter:
    """Turns nested blocks into step definitions and the structure the graph should have."""

    def __init__(self) -> None:
        self.counter = itertools.count()
        self.defs: list[str] = []
        self.expect: dict[str, dict[str, Any]] = {}

    def add(self, name: str, targets: list[str], *, foreach: bool = False, join: bool = False):  # type: ignore[no-untyped-def]
        args = ", ".join(f"self.{t}" for t in targets) + (', foreach="items"' if foreach else "")
        self.defs.append(
            f"    @step\n    def {name}(self{', inputs' if join else ''}):\n"
            f"        self.items = [1, 2]\n        self.next({args})\n"
        )

    def seq(self, blocks: list[Block], then: str, depth: int, parents: tuple[str, ...]):  # type: ignore[no-untyped-def]
        """Emit blocks leading to ``then``; return (entry step, exit step)."""
        exit_ = None
        for kind, children in reversed(blocks):
            n = next(self.counter)
            name = f"s{n}"
            if kind == "linear":
                self.add(name, [then])
                self.expect[name] = {"depth": depth, "parents": parents}
                exit_ = exit_ or name
            else:
                join = f"j{n}"
                self.add(join, [then], join=True)
                self.expect[join] = {"depth": depth, "parents": parents, "closes": name}
                inner_depth = depth + (kind == "foreach")
                ends = [self.seq(child, join, inner_depth, (*parents, name)) for child in children]
                self.add(name, [e for e, _ in ends], foreach=kind == "foreach")
                self.expect[name] = {
                    "depth": depth,
                    "parents": parents,
                    "join": join,
                    "in": tuple(x for _, x in ends),
                }
                exit_ = exit_ or join
            then = name
        return then, exit_


@settings(max_examples=60, deadline=None)
@given(blocks=_blocks(2), data=st.data())
def test_random_nested_shapes(blocks: list[Block], data: st.DataObject) -> None:
    emitter = _Emitter()
    entry, _ = emitter.seq(blocks, "end", 0, ())
    emitter.add("start", [entry])
    defs = data.draw(st.permutations(emitter.defs))  # definition order must not matter
    source = (
        "from asyncflow._spec._step import step\n\n\nclass RandomFlow:\n"
        + "\n".join(defs)
        + "\n    @step\n    def end(self):\n        pass\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random_flow.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location("random_flow", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        graph = build_graph(module.RandomFlow)
    for name, want in emitter.expect.items():
        node = graph[name]
        assert node.foreach_depth == want["depth"], name
        assert node.split_parents == want["parents"], name
        assert node.closes == want.get("closes"), name
        assert node.matching_join == want.get("join"), name
        if "join" in want:
            assert graph[want["join"]].in_ == want["in"], name
