"""What ``self`` is inside a step: artifacts as attributes, ``next()``, ``input``, ``index``.

The runtime injects a task context (:class:`TaskContext`) into each fresh flow instance;
this module only defines the user-facing behaviour and delegates storage to that context.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import attrgetter
from types import FunctionType, MethodType
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from .._errors import ArtifactSerializationError, FlowValidationError
from ._config import check_new_flow_class
from ._names import RESERVED_NAMES, artifact_name_problem
from ._step import step_info

__all__ = ["FlowBase", "ForeachFrame", "Switch", "TaskContext", "class_constant"]

ForeachFrame = tuple[int, int, Any]  # (index, num_splits, value), as in Metaflow
Switch = tuple[str, tuple[tuple[str, str], ...]]  # (condition, ((value, step), ...))


class TaskContext(Protocol):
    """The runtime side of one task, as seen by the flow instance."""

    step: str

    @property
    def foreach_stack(self) -> tuple[ForeachFrame, ...]:
        """One frame per enclosing foreach, outermost first."""
        ...

    def load(self, name: str) -> Any:
        """Load artifact ``name`` visible to this task; raise AttributeError if absent."""
        ...

    def parameter(self, attr: str) -> Any:
        """The value of the parameter stored under attribute ``attr``."""
        ...

    def record_next(
        self, targets: tuple[str, ...], foreach: str | None, switch: Switch | None = None
    ) -> None:
        """Record the step's transition; raise FlowValidationError on a second call."""
        ...

    def merge_artifacts(
        self,
        flow: FlowBase,
        inputs: Any,
        include: Iterable[str] | None,
        exclude: Iterable[str] | None,
    ) -> None:
        """Implement :meth:`FlowBase.merge_artifacts`."""
        ...


class _FirstRead:
    """A field of the innermost foreach frame of the running task (``0``: its index, ``2``:
    its element, or None outside a foreach), computed on the first read and kept in the flow
    instance's ``__dict__`` under the attribute's own (private) name, where later reads find
    it before this descriptor. The element is the task's own copy (``foreach_stack``)."""

    __slots__ = ("field", "name")

    def __init__(self, field: int) -> None:
        self.field = field
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, flow: FlowBase | None, owner: type | None = None) -> Any:
        if flow is None:
            return self
        stack = flow._af_task.foreach_stack  # outside a running step: AttributeError
        value = stack[-1][self.field] if stack else None
        flow.__dict__[self.name] = value
        return value


class FlowBase:
    """The base of every flow: step-side behaviour (see :class:`asyncflow.FlowSpec`)."""

    _af_task: TaskContext

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_new_flow_class(cls)  # a Config named like a parameter or a step: refused now

    # --- artifacts -------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: the artifact is not loaded yet.
        if name.startswith("_"):
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r} "
                "(names starting with '_' are not artifacts and are not passed between steps)"
            )
        task = self.__dict__.get("_af_task")
        if task is None:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}; artifacts are "
                "only readable inside a running step (use asyncflow.Flow to read stored runs)"
            )
        value = task.load(name)
        # Keep the loaded value on the instance: later reads are plain attribute reads,
        # and in-place mutation of it is detected (and saved) when the task ends.
        object.__setattr__(self, name, value)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        problem = artifact_name_problem(name)
        if problem is not None:
            task = self.__dict__.get("_af_task")
            step = task.step if task is not None else ""
            where = f" in step {step!r}" if step else ""
            raise ArtifactSerializationError(
                f"cannot set an artifact named {name!r}{where} of {type(self).__name__}: "
                f"{problem}; name it like a variable, as in self.result = value",
                str(name),
                step,
            )
        if name[0] != "_":
            _refuse_class_attribute(self, name)
        object.__setattr__(self, name, value)

    def _af_parameter_value(self, attr: str) -> Any:
        task = self.__dict__.get("_af_task")
        if task is None:
            raise AttributeError(
                f"parameter {attr!r} of {type(self).__name__} has a value only inside a "
                "running step"
            )
        return task.parameter(attr)

    def __reduce__(self) -> NoReturn:
        raise TypeError(
            "a flow can't be stored as an artifact; maybe you assigned `self` or `inputs` "
            "to an attribute? Store the specific values you need instead"
        )

    # --- the step API --------------------------------------------------------------
    @property
    def name(self) -> str:
        """The flow's name (its class name)."""
        return type(self).__name__

    # ``self.input`` and ``self.index`` are read in a step's inner loops: each is a property
    # whose getter is C code (attrgetter) reading a private twin, which its first read puts
    # in the instance's __dict__ (see _FirstRead), so that later reads call no Python code.
    _af_input = _FirstRead(2)
    _af_index = _FirstRead(0)
    if TYPE_CHECKING:  # what type checkers and readers see; the same at run time

        @property
        def input(self) -> Any:
            """In a foreach task, the element of the foreach list this task handles; else
            None."""

        @property
        def index(self) -> int | None:
            """In a foreach task, its position in the foreach list; else None."""

    else:
        input = property(
            attrgetter("_af_input"),
            doc="In a foreach task, the element of the foreach list this task handles; else None.",
        )
        index = property(
            attrgetter("_af_index"),
            doc="In a foreach task, its position in the foreach list; else None.",
        )

    def foreach_stack(self) -> list[ForeachFrame]:
        """One ``(index, num_splits, value)`` per enclosing foreach, outermost first."""
        return list(self._af_task.foreach_stack)

    def next(
        self,
        *targets: Callable[..., Any] | dict[str, Callable[..., Any]],
        foreach: str | None = None,
        condition: str | None = None,
    ) -> None:
        """Hand over to the next step(s): ``next(self.a)``, ``next(self.a, self.b)``
        (a static split), ``next(self.a, foreach="items")`` (one task per element) or
        ``next({"x": self.a, "y": self.b}, condition="choice")`` (a switch: the one step whose
        value ``str(self.choice)`` is, runs; it may lead back to this step or an earlier one).

        :raises FlowValidationError: a target is not a step of this flow, or next() was
            already called in this step.
        """
        task = self._af_task
        switch: Switch | None = None
        if condition is not None or any(isinstance(t, dict) for t in targets):
            cases = targets[0] if len(targets) == 1 else None
            if not isinstance(cases, dict) or not isinstance(condition, str):
                raise FlowValidationError(
                    f"step '{task.step}' of {self.name} called self.next() with "
                    f"{len(targets)} target(s) and condition={condition!r}; a switch is "
                    'self.next({"<value>": self.<step>, ...}, condition="<artifact>").',
                    task.step,
                )
            pairs = tuple((str(k), self._af_step_name(v)) for k, v in cases.items())
            switch = (condition, pairs)
            names = list(dict.fromkeys(name for _, name in pairs))
        else:
            names = [self._af_step_name(t) for t in targets]
        if foreach is not None and not isinstance(foreach, str):
            raise FlowValidationError(
                f"step '{task.step}' of {self.name} called self.next(..., foreach={foreach!r}); "
                "foreach takes the name of an artifact as a string.",
                task.step,
            )
        task.record_next(tuple(names), foreach, switch)

    def _af_step_name(self, target: object) -> str:
        info = step_info(target)
        if info is None or getattr(target, "__self__", None) is not self:
            step = self._af_task.step
            raise FlowValidationError(
                f"step '{step}' of {self.name} called self.next({target!r}); pass "
                "steps of this flow as self.<step_name>.",
                step,
            )
        return info.name

    def merge_artifacts(
        self,
        inputs: Any,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
    ) -> None:
        """In a join, copy every artifact whose value is the same in all inputs that have it.

        Names already set on ``self`` are skipped. Values are compared by their stored bytes
        (content hash), so nothing is loaded or copied.

        :param inputs: the join's ``inputs``.
        :param include: merge only these names (each must exist in some input).
        :param exclude: merge all names but these.
        :raises MergeArtifactsError: values differ between inputs (all such names are
            listed and nothing is set), ``include`` names a missing artifact, both
            ``include`` and ``exclude`` are given, or the step is not a join.
        """
        self._af_task.merge_artifacts(self, inputs, include, exclude)


def class_constant(cls: type, name: str) -> bool:
    """Whether ``name`` is a constant of the flow class ``cls``: a public class attribute that
    is not a method, a step, a property or a parameter (any data descriptor). Steps read it as
    ``self.<name>``; no step may set it (see :meth:`FlowBase.__setattr__`)."""
    if name.startswith("_"):
        return False
    owned = getattr(cls, name, _ABSENT)
    if owned is _ABSENT or hasattr(type(owned), "__set__"):
        return False
    return not isinstance(owned, FunctionType | MethodType)


def _refuse_class_attribute(flow: FlowBase, name: str) -> None:
    """Refuse ``self.<name> = ...`` where the class defines ``name`` (Parameters refuse
    themselves, through their ``__set__``).

    A class attribute would hide the artifact in every later step (a fresh instance finds
    the class's value first), so, as in Metaflow, the class's attributes are read-only.
    """
    cls = type(flow)
    owned = getattr(cls, name, _ABSENT)
    if owned is _ABSENT or (hasattr(type(owned), "__set__") and not isinstance(owned, property)):
        return
    if class_constant(cls, name):
        what = (
            f"a class attribute of {cls.__name__}; class attributes are constants, the same "
            "in every step, so a step may read it but not set it (remove it from the class "
            "to make it an artifact)"
        )
    elif step_info(owned):
        what = "a step of this flow"
    elif name in RESERVED_NAMES:
        what = "used by asyncflow"
    else:
        what = f"a method or property of {cls.__name__}"
    raise AttributeError(
        f"cannot set self.{name} in {cls.__name__}: {name!r} is {what}; store the value "
        f"under another name, such as self.{name}_value.",
        name=name,
        obj=flow,
    )


_ABSENT = object()
