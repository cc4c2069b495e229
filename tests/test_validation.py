"""Every rule a flow must follow: each error names the step, its file:line and the fix."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import linecache
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import pytest

from asyncflow._errors import FlowValidationError
from asyncflow._spec._graph import build_graph
from asyncflow._spec._names import RESERVED_NAMES
from asyncflow._spec._step import step, step_info
from asyncflow._spec._stepsource import block_end, parse_def, source_lines
from asyncflow._spec._validate import validate
from tests.flows import graph_shapes as shapes


def fail(flow: type) -> FlowValidationError:
    with pytest.raises(FlowValidationError) as caught:
        build_graph(flow)
    return caught.value


def def_at(flow: type, name: str) -> str:
    """``file:line`` of a step's def (its first decorator)."""
    info = step_info(flow.__dict__[name])
    assert info is not None
    return info.where


def line_at(flow: type, name: str, text: str, nth: int = 0) -> str:
    """``file:line`` of the ``nth`` line of a step's source containing ``text``."""
    func = flow.__dict__[name]
    lines, first = inspect.getsourcelines(func)
    hits = [first + i for i, line in enumerate(lines) if text in line]
    return f"{func.__code__.co_filename}:{hits[nth]}"


def check(err: FlowValidationError, name: str | None, where: str, *phrases: str) -> None:
    message = str(err)
    assert err.step == name
    if name is not None:
        assert f"'{name}'" in message
    assert where in message
    for phrase in phrases:
        assert phrase in message


# --- how self.next is written ----------------------------------------------------------------


def test_source_unavailable() -> None:
    namespace: dict[str, Any] = {"step": step}
    source = "class Flow:\n    @step\n    def start(self):\n        self.next(self.end)\n"
    exec(compile(source, "<generated>", "exec"), namespace)
    err = fail(namespace["Flow"])
    check(err, "start", "<generated>:2", "Cannot read the source", "define the flow in a file")
    assert "(or notebook cell)" in str(err)


def _import_file(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_source_changed_since_import(tmp_path: Path) -> None:
    path = tmp_path / "edited_flow.py"
    path.write_text(
        "from asyncflow import FlowSpec, step\n\n\nclass Edited(FlowSpec):\n"
        "    @step\n    def start(self):\n        self.next(self.end)\n\n"
        "    @step\n    def end(self):\n        pass\n",
        encoding="utf-8",
    )
    flow = _import_file(path, "edited_flow").Edited
    # Edited after the import: the lines the steps were compiled from now hold other code.
    path.write_text("x = 1\n" * 12 + "# edited\n", encoding="utf-8")
    err = fail(flow)
    check(err, "start", def_at(flow, "start"), "Cannot find the def", "import it again")


STEP_SHAPES = '''\
import functools
from asyncflow import FlowSpec, step, retry


def wrapping(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


class Shapes(FlowSpec):
    @step
    def start(self):
        """A docstring."""
        self.x = 1  # a comment
        self.next(self.a)

        # a comment at the body's depth after the last statement

    @retry(
        times=2,
    )
    @step
    def a(self):
        text = """
    a string that dedent cannot take
"""
        self.y = text
        self.next(self.b)
    # a comment at the class's depth

    @step
    async def b(self): self.next(self.c)

    @step
    @wrapping
    def c(self):
        def inner(self):
            return 1

        class Inner:
            def method(self):
                pass

        self.z = inner(self) if True else Inner()
        self.next(self.end)

    try:
        pass
    except ImportError:
        pass
    else:

        @step
        def end(self):
            pass
'''


def test_step_source_as_inspect_reads_it(tmp_path: Path) -> None:
    """Finding a step's block by indentation (checked by parsing it) gives the lines inspect
    gives (up to trailing comments, which parse to nothing), and the same first line."""
    flows = []
    for name, source in [
        ("shapes_flow", STEP_SHAPES),
        (
            "shapes_longer",
            STEP_SHAPES.replace("self.x = 1  #", "self.w = 0\n        self.x = 1  #"),
        ),
    ]:
        path = tmp_path / f"{name}.py"
        path.write_text(source, encoding="utf-8")
        flows.append((path, _import_file(path, name).Shapes))
    for _ in range(2):
        for path, flow in flows:
            funcs = [flow.__dict__[n] for n in ("start", "a", "b", "c", "end")]
            funcs.append(funcs[3].__wrapped__)
            for func in funcs:
                lines, first = source_lines(func)
                want, want_first = inspect.getsourcelines(func)
                assert first == want_first
                assert want[: len(lines)] == lines
                rest = want[len(lines) :]
                assert all(not line.strip() or line.strip().startswith("#") for line in rest)
                name = func.__name__
                got = parse_def(lines, first, name)
                assert ast.dump(got) == ast.dump(parse_def(want, first, name))
                # Cut by indentation, not by inspect's tokenizer (the slow way), except where
                # a string goes back to a shallower column than the def's (step a).
                cut = block_end(linecache.getlines(str(path)), first - 1)
                assert (cut is None) == (name == "a"), name
            assert build_graph(flow).name == "Shapes"


def test_missing_next() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.x = 1

        @step
        def end(self) -> None:
            pass

    check(
        fail(Flow),
        "start",
        def_at(Flow, "start"),
        "does not end with self.next(...)",
        "finish it with self.next(self.<step>)",
    )


def test_conditional_next() -> None:
    class Flow:
        @step
        def start(self) -> None:
            if self.x:
                self.next(self.a)
            else:
                self.next(self.end)

        @step
        def a(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), "inside a block", "last statement")


def test_next_not_last() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.end)
            self.x = 1

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), "is not the last statement")
    assert "exactly one unconditional self.next(...)" in str(err)


def test_next_called_twice() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.end)
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next", 0), "called more than once")


def test_dynamic_targets() -> None:
    class Flow:
        @step
        def start(self) -> None:
            targets = [self.end]
            self.next(*targets)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), "`*targets`", "written as self.<step>")


def test_target_not_an_attribute_of_self() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next("end")  # type: ignore[arg-type]

        @step
        def end(self) -> None:
            pass

    check(fail(Flow), "start", line_at(Flow, "start", "self.next"), "`'end'`", "self.<step>")


def test_foreach_not_a_literal() -> None:
    class Flow:
        @step
        def start(self) -> None:
            name = "items"
            self.next(self.end, foreach=name)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), 'foreach="items"', "not `name`")


@pytest.mark.parametrize("keyword", ["other", "**"])
def test_unknown_keyword(keyword: str) -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.end, other=1)

        @step
        def end(self) -> None:
            pass

    class Splat:
        @step
        def start(self) -> None:
            self.next(self.end, **{"foreach": "x"})

        @step
        def end(self) -> None:
            pass

    flow = Flow if keyword == "other" else Splat
    shown = "`other=`" if keyword == "other" else "`**{'foreach': 'x'}`"
    check(fail(flow), "start", line_at(flow, "start", "self.next"), "accepts only foreach=", shown)


def test_next_without_targets() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next()

        @step
        def end(self) -> None:
            pass

    check(fail(Flow), "start", line_at(Flow, "start", "self.next"), "names no step", "self.end")


def test_step_under_a_second_name() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

        finish = end

    err = fail(Flow)
    check(err, "finish", def_at(Flow, "end"), "under a second name", "its own def")


def test_step_hides_a_base_attribute() -> None:
    class Base:
        def helper(self) -> None:
            pass

    class Flow(Base):
        @step
        def start(self) -> None:
            self.next(self.helper)

        @step
        def helper(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    check(fail(Flow), "helper", def_at(Flow, "helper"), "hides the attribute", "rename the step")


# --- names, start and end --------------------------------------------------------------------


def test_reserved_names_are_exactly_the_public_attributes_of_every_flow() -> None:
    from asyncflow import FlowSpec

    public = {name for name in dir(FlowSpec) if not name.startswith("_")}
    assert public == RESERVED_NAMES
    assert {"check", "show"}.isdisjoint(RESERVED_NAMES)  # command words, not attributes


def test_steps_and_parameters_share_one_reserved_name_rule() -> None:
    import asyncflow._spec._resolve as params
    import asyncflow._spec._validate as rules

    # One rule in one place: both modules use the set of _names, and hold no copy of it.
    assert params.RESERVED_NAMES is RESERVED_NAMES
    assert rules.RESERVED_NAMES is RESERVED_NAMES


class NamedNext:
    @step
    def start(self) -> None:
        self.next(self.next)  # type: ignore[arg-type]

    @step  # type: ignore[misc]
    def next(self) -> None:
        self.next(self.end)  # type: ignore[call-arg]

    @step
    def end(self) -> None:
        pass


class NamedRun:
    @step
    def start(self) -> None:
        self.next(self.run)

    @step
    def run(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


class NamedPrivate:
    @step
    def start(self) -> None:
        self.next(self._hidden)

    @step
    def _hidden(self) -> None:
        self.next(self.end)

    @step
    def end(self) -> None:
        pass


@pytest.mark.parametrize(
    ("flow", "name", "phrase"),
    [
        (NamedNext, "next", "'next' is reserved"),
        (NamedRun, "run", "'run' is reserved"),
        (NamedPrivate, "_hidden", "may not start with '_'"),
    ],
    ids=["next", "run", "underscore"],
)
def test_reserved_names(flow: type, name: str, phrase: str) -> None:
    check(fail(flow), name, def_at(flow, name), phrase, "rename the step")


def test_invalid_identifier() -> None:
    graph = build_graph(shapes.LinearFlow)
    nodes = {("my-middle" if n == "middle" else n): node for n, node in graph.nodes.items()}
    nodes["my-middle"] = dataclasses.replace(nodes["my-middle"], name="my-middle")
    broken = dataclasses.replace(graph, nodes=MappingProxyType(nodes))
    with pytest.raises(FlowValidationError) as caught:
        validate(broken)
    err = caught.value
    check(err, "my-middle", def_at(shapes.LinearFlow, "middle"), "not a valid Python identifier")
    assert "rename the step" in str(err)


@pytest.mark.parametrize("missing", ["start", "end"])
def test_start_and_end_must_exist(missing: str) -> None:
    class NoStart:
        @step
        def begin(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    class NoEnd:
        @step
        def start(self) -> None:
            self.next(self.finish)

        @step
        def finish(self) -> None:
            self.next(self.end)  # type: ignore[attr-defined]

    flow = NoStart if missing == "start" else NoEnd
    err = fail(flow)
    check(err, missing, __file__, f"has no step named '{missing}'", "add an @step method")
    if missing == "end":  # the misspelt target is listed too, with the other problems
        assert "Flow NoEnd has 2 problems" in str(err)


def test_start_takes_no_inputs() -> None:
    class Flow:
        @step
        def start(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    check(fail(Flow), "start", def_at(Flow, "start"), "start takes inputs", "def start(self)")


def test_end_has_no_next() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            self.next(self.start)

    err = fail(Flow)
    check(err, "end", line_at(Flow, "end", "self.next"), "end finishes the flow", "remove the call")


def test_end_takes_no_inputs() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def end(self, inputs: Any) -> None:
            pass

    err = fail(Flow)
    check(err, "end", def_at(Flow, "end"), "end cannot be a join", "add a join step")


# --- targets ---------------------------------------------------------------------------------


def test_misspelt_target() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.trian)  # type: ignore[attr-defined]

        @step
        def train(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), "self.trian, which is not a step")
    assert "did you mean 'train'?" in str(err)
    assert "name one of the steps: start, train, end" in str(err)


def test_duplicate_targets() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a, self.a)

        @step
        def a(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), "names 'a' more than once")
    assert "two or more distinct steps" in str(err)


def test_foreach_has_one_target() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a, self.b, foreach="items")

        @step
        def a(self) -> None:
            self.next(self.end)

        @step
        def b(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), "exactly one target, not 2")
    assert 'self.next(self.<step>, foreach="items")' in str(err)


def test_foreach_names_an_attribute() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a, foreach="my items")

        @step
        def a(self) -> None:
            self.next(self.join)

        @step
        def join(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), "'my items' is not an attribute name")
    assert 'foreach="items"' in str(err)


# --- shape -----------------------------------------------------------------------------------


def test_cycle() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a)

        @step
        def a(self) -> None:
            self.next(self.b)

        @step
        def b(self) -> None:
            self.next(self.a)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "b", line_at(Flow, "b", "self.next"), "cycle (a -> b -> a)", "only through a switch")


def test_unreachable_step() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.end)

        @step
        def orphan(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "orphan", def_at(Flow, "orphan"), "never reached from start")
    assert "call self.next(self.orphan) from another step" in str(err)


# --- splits and joins ------------------------------------------------------------------------


def test_split_never_joined() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.body, foreach="items")

        @step
        def body(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "start", line_at(Flow, "start", "self.next"), "(body) are never joined")
    assert "def join(self, inputs)" in str(err)


def test_parents_without_inputs() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a, self.b)

        @step
        def a(self) -> None:
            self.next(self.merge)

        @step
        def b(self) -> None:
            self.next(self.merge)

        @step
        def merge(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "merge", def_at(Flow, "merge"), "2 steps lead here (a, b)")
    assert "make it a join: `def merge(self, inputs)`" in str(err)


def test_end_with_several_parents() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a, self.b)

        @step
        def a(self) -> None:
            self.next(self.end)

        @step
        def b(self) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "end", def_at(Flow, "end"), "end has 2 parents (a, b)", "add a join step")


def test_inputs_without_split() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.middle)

        @step
        def middle(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "middle", def_at(Flow, "middle"), "takes inputs but joins no split")
    assert "remove the inputs parameter: `def middle(self)`" in str(err)


@pytest.mark.parametrize("how", ["split", "foreach"])
def test_join_must_leave_linearly(how: str) -> None:
    class Split:
        @step
        def start(self) -> None:
            self.next(self.a, self.b)

        @step
        def a(self) -> None:
            self.next(self.join)

        @step
        def b(self) -> None:
            self.next(self.join)

        @step
        def join(self, inputs: Any) -> None:
            self.next(self.c, self.d)

        @step
        def c(self) -> None:
            self.next(self.join2)

        @step
        def d(self) -> None:
            self.next(self.join2)

        @step
        def join2(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    class Foreach:
        @step
        def start(self) -> None:
            self.next(self.a, foreach="items")

        @step
        def a(self) -> None:
            self.next(self.join)

        @step
        def join(self, inputs: Any) -> None:
            self.next(self.c, foreach="more")

        @step
        def c(self) -> None:
            self.next(self.join2)

        @step
        def join2(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    flow = Split if how == "split" else Foreach
    err = fail(flow)
    check(err, "join", line_at(flow, "join", "self.next"), "a join may not split again")
    assert "split in that next step" in str(err)


def test_join_missing_a_branch() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a, self.b)

        @step
        def a(self) -> None:
            self.next(self.join)

        @step
        def b(self) -> None:
            self.next(self.end)

        @step
        def join(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    # the join that misses branch b comes first (definition order), then end's two parents
    assert err.step == "join"
    message = str(err)
    assert "Flow Flow has 2 problems" in message
    assert "end has 2 parents (b, join)" in message
    assert f"Step 'join' at {def_at(Flow, 'join')}" in message
    assert f"joins split 'start' ({def_at(Flow, 'start')}) but branch(es) b never lead" in message
    assert "end the last step of every branch of 'start' with self.next(self.join)" in message


def test_nested_split_joined_outside_its_branch() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a, self.b)

        @step
        def a(self) -> None:
            self.next(self.a1, self.a2)

        @step
        def a1(self) -> None:
            self.next(self.join)

        @step
        def a2(self) -> None:
            self.next(self.join)

        @step
        def b(self) -> None:
            self.next(self.join)

        @step
        def join(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "join", def_at(Flow, "join"), "joins branches of different splits")
    assert "a1 from a; a2 from a; b from start" in str(err)
    assert "close 'a' with its own join inside its branch first" in str(err)


def test_cross_branch_join() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.a, self.b)

        @step
        def a(self) -> None:
            self.next(self.a1, self.a2)

        @step
        def b(self) -> None:
            self.next(self.b1, self.b2)

        @step
        def a1(self) -> None:
            self.next(self.left)

        @step
        def b1(self) -> None:
            self.next(self.left)

        @step
        def a2(self) -> None:
            self.next(self.right)

        @step
        def b2(self) -> None:
            self.next(self.right)

        @step
        def left(self, inputs: Any) -> None:
            self.next(self.join)

        @step
        def right(self, inputs: Any) -> None:
            self.next(self.join)

        @step
        def join(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    err = fail(Flow)
    check(err, "left", def_at(Flow, "left"), "different splits (a1 from a; b1 from b)")
    assert "a join closes exactly one split" in str(err)
    assert "give each of the splits 'a', 'b' its own join inside its branch" in str(err)


@pytest.mark.parametrize("how", ["split", "foreach"])
def test_split_straight_into_its_join(how: str) -> None:
    class Split:
        @step
        def start(self) -> None:
            self.next(self.a, self.join)

        @step
        def a(self) -> None:
            self.next(self.join)

        @step
        def join(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    class Foreach:
        @step
        def start(self) -> None:
            self.next(self.join, foreach="items")

        @step
        def join(self, inputs: Any) -> None:
            self.next(self.end)

        @step
        def end(self) -> None:
            pass

    flow = Split if how == "split" else Foreach
    err = fail(flow)
    check(err, "join", def_at(flow, "join"), "direct target of 'start', the split it joins")
    assert "at least one step in every branch" in str(err)


def test_several_problems_are_listed_together() -> None:
    class Flow:
        @step
        def start(self) -> None:
            self.next(self.nope)  # type: ignore[attr-defined]

        @step
        def end(self, inputs: Any) -> None:
            pass

    err = fail(Flow)
    message = str(err)
    assert message.startswith("Flow Flow has 2 problems:\n  - Step 'end'")
    assert "self.nope, which is not a step" in message
    assert err.step == "end"


@pytest.mark.parametrize("flow_name", ["BranchFlow", "NestedForeachFlow", "ForeachInBranchFlow"])
def test_valid_graphs_validate(flow_name: str) -> None:
    validate(build_graph(getattr(shapes, flow_name)))
