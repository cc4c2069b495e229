"""``current``: what the running task is, read from a ContextVar (one value per task)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from .._spec._tags import system_tag_value
from ._cards import CardCollector, card_var

__all__ = ["Current", "CurrentInfo", "current", "current_var"]


@dataclass(frozen=True, slots=True)
class CurrentInfo:
    """The identity of one running task."""

    flow_name: str
    run_id: str
    step_name: str
    task_id: str
    retry_count: int
    origin_run_id: str | None
    parameter_names: tuple[str, ...]
    system_tags: tuple[str, ...] = ()  # the run's (``_spec._tags``): its user and project
    pass_index: int = 0  # the loop pass: 0 for the first task of a step (and foreach path)

    def tag(self, key: str) -> str | None:
        """The value of the run's system tag ``<key>:...``, or None."""
        return system_tag_value(self.system_tags, key)

    @property
    def pathspec(self) -> str:
        """``Flow/run/step/task``."""
        return f"{self.flow_name}/{self.run_id}/{self.step_name}/{self.task_id}"


current_var: ContextVar[CurrentInfo | None] = ContextVar("asyncflow_current", default=None)


class Current:
    """Read-only view of the running task. Outside a step every field is None and
    ``is_running_flow`` is False. Each concurrent task sees its own values."""

    __slots__ = ()

    @property
    def is_running_flow(self) -> bool:
        """True inside a step."""
        return current_var.get() is not None

    @property
    def flow_name(self) -> str | None:
        """The flow's name."""
        info = current_var.get()
        return info.flow_name if info else None

    @property
    def run_id(self) -> str | None:
        """The run's id."""
        info = current_var.get()
        return info.run_id if info else None

    @property
    def pass_index(self) -> int | None:
        """How many tasks of this step ran before this one in the run, in its foreach
        element: 0 for the first, 1 for the second, and so on; a step outside any loop is
        always 0. The count is not restarted when a loop is entered again: the step of a loop
        nested in another counts on across the outer loop's passes (``max_passes`` counts
        the same way)."""
        info = current_var.get()
        return info.pass_index if info else None

    @property
    def step_name(self) -> str | None:
        """The step's name."""
        info = current_var.get()
        return info.step_name if info else None

    @property
    def task_id(self) -> str | None:
        """The task's id (unique in the run)."""
        info = current_var.get()
        return info.task_id if info else None

    @property
    def pathspec(self) -> str | None:
        """``Flow/run/step/task`` of the running task."""
        info = current_var.get()
        return info.pathspec if info else None

    @property
    def retry_count(self) -> int | None:
        """0 on the first attempt, 1 on the first retry, and so on."""
        info = current_var.get()
        return info.retry_count if info else None

    @property
    def origin_run_id(self) -> str | None:
        """For a resumed run, the id of the run it resumes; else None."""
        info = current_var.get()
        return info.origin_run_id if info else None

    @property
    def parameter_names(self) -> tuple[str, ...] | None:
        """Names of the flow's parameters (attribute names)."""
        info = current_var.get()
        return info.parameter_names if info else None

    @property
    def card(self) -> CardCollector:
        """The cards of the running step (``@card``): ``current.card.append(component)``,
        ``current.card["id"]``. In a step without ``@card`` (or outside a step) each call
        warns once and does nothing, as in Metaflow."""
        collector = card_var.get()
        if collector is None:
            info = current_var.get()
            collector = CardCollector(info.step_name if info else None, ())
        return collector

    # --- @project and namespaces, as Metaflow's current has them ---------------------------
    @property
    def namespace(self) -> str | None:
        """The namespace of the run: ``user:<username>`` for a local run (Metaflow's value),
        whether or not the flow has ``@project``."""
        info = current_var.get()
        user = info.tag("user") if info else None
        return None if user is None else f"user:{user}"

    @property
    def username(self) -> str | None:
        """Who started the run (Metaflow's ``current.username``): ``$ASYNCFLOW_USER``, else
        the login user, as recorded in the run's ``user:`` system tag."""
        info = current_var.get()
        return info.tag("user") if info else None

    @property
    def project_name(self) -> str | None:
        """The flow's ``@project`` name; None without ``@project``."""
        info = current_var.get()
        return info.tag("project") if info else None

    @property
    def branch_name(self) -> str | None:
        """The run's branch of its project (``user.<name>``, ``test.<branch>``, ``prod``,
        ``prod.<branch>``); None without ``@project``."""
        info = current_var.get()
        return info.tag("project_branch") if info else None

    @property
    def project_flow_name(self) -> str | None:
        """``<project>.<branch>.<FlowName>``; None without ``@project``."""
        info = current_var.get()
        if info is None or self.project_name is None or self.branch_name is None:
            return None
        return f"{self.project_name}.{self.branch_name}.{info.flow_name}"

    @property
    def is_user_branch(self) -> bool | None:
        """True on the default branch ``user.<name>`` (no --branch, no --production); None
        without ``@project``."""
        branch = self.branch_name
        return None if branch is None else branch.startswith("user.")

    @property
    def is_production(self) -> bool | None:
        """True on a production branch (``--production``); None without ``@project``."""
        branch = self.branch_name
        return None if branch is None else branch == "prod" or branch.startswith("prod.")

    def __repr__(self) -> str:
        info = current_var.get()
        return f"<current {info.pathspec}>" if info else "<current: not in a step>"


current = Current()
