"""Metaflow names asyncflow does not provide, each with why and what to use instead.

``from asyncflow import S3`` then stops with one clear line (a :class:`NotSupportedError`,
which is an ImportError) instead of Python's bare "cannot import name". The table is the one
place these answers live; docs/metaflow.md lists the same names and a test keeps them in step.
"""

from __future__ import annotations

from .._errors import NotSupportedError

__all__ = ["REFUSED", "refusal"]

_RUN_IT_YOURSELF = (
    "asyncflow runs inside your own program: call `await flow.run()` (or `python flow.py "
    "run`) from {what}."
)
_NOT_YET = "{name} is not built yet (planned in asyncflow's issue {issue}); {instead}"

#: name -> why it is refused and what to do instead.
REFUSED: dict[str, str] = {
    "NBRunner": "asyncflow has no NBRunner: in a notebook, `run = await MyFlow().run(...)` "
    "works in a cell as it is, and asyncflow.Runner runs flows in the background (start, "
    "watch, cancel).",
    "Deployer": "asyncflow deploys flows to no orchestrator (Argo, Step Functions, Airflow). "
    + _RUN_IT_YOURSELF.format(what="your own service or scheduler"),
    "NBDeployer": "asyncflow deploys flows to no orchestrator. "
    + _RUN_IT_YOURSELF.format(what="your own service or scheduler"),
    "DeployedFlow": "asyncflow deploys flows to no orchestrator. "
    + _RUN_IT_YOURSELF.format(what="your own service or scheduler"),
    "schedule": "asyncflow has no scheduler. "
    + _RUN_IT_YOURSELF.format(what="cron, APScheduler or your app's own timer"),
    "trigger": "asyncflow has no event bus to trigger runs. "
    + _RUN_IT_YOURSELF.format(what="the handler of the event"),
    "trigger_on_finish": "asyncflow has no event bus to trigger runs. "
    + _RUN_IT_YOURSELF.format(
        what="the code that awaited the first flow, once its `await flow.run()` returns"
    ),
    "exit_hook": "asyncflow has no exit hooks: wrap `await flow.run()` in try/finally in your "
    "program, or read the run's status with Flow(name).latest_run afterwards.",
    "parallel": "multi-node @parallel steps need gang-scheduled cluster nodes, which asyncflow "
    "does not manage: fan out with a foreach and run it on worker processes "
    '(@executor("process")) or Dask (@executor("dask")).',
    "secrets": "asyncflow fetches no secrets: read them from your secret manager inside the "
    "step (they are stored only if you assign them to self).",
    "UserStepDecorator": "asyncflow has no user step decorators: call your before/after code "
    "from the step itself (a context manager or a helper function the step calls).",
    "user_step_decorator": "asyncflow has no user step decorators: call your before/after "
    "code from the step itself (a context manager or a helper function the step calls).",
    "S3": "asyncflow has no S3 client: artifacts live in its store file. Read and write S3 "
    "with boto3, s3fs or fsspec inside a step and assign what you need to self.",
    "parallel_map": "asyncflow has no parallel_map: fan out with a foreach on worker processes "
    '(@executor("process")), or use concurrent.futures inside the step.',
    "parallel_imap_unordered": "asyncflow has no parallel_imap_unordered: fan out with a "
    'foreach on worker processes (@executor("process")), or use '
    "concurrent.futures.as_completed inside the step.",
    "profile": "asyncflow has no profile(): each task's start and end are recorded (the "
    "client's task.created_at / finished_at); time a block yourself with time.perf_counter().",
}
_CARDS_LATER = (
    "not built yet (the run report draws Markdown, Table, Image and Artifact cards); "
    "use those from asyncflow.cards."
)
for _name in ("VegaChart", "ProgressBar", "Error"):
    REFUSED[f"cards.{_name}"] = f"{_name} is {_CARDS_LATER}"


def refusal(name: str) -> NotSupportedError | None:
    """The error for the Metaflow name ``name``, or None if it is not a refused name."""
    why = REFUSED.get(name)
    if why is None:
        return None
    return NotSupportedError(f"{name} is a Metaflow name asyncflow does not provide: {why}", name)
