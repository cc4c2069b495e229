"""asyncflow: Metaflow-style flows as an embedded async library, stored in one SQLite file.

Layers (checked by import-linter, see pyproject.toml): ``_cli`` on top; then ``_report``
(the run report: reads through ``_client``, renders, never writes); then ``_runtime``
(run flows) and ``_client`` (read runs); then ``_aio`` (async helpers both share); then
``_spec`` (define flows, pure) and ``_store`` (the only SQL); then ``_codecs`` (values to
bytes, pure); then ``_errors``; and ``_imports`` (the lock of the imports made on first
use) below all. A module may import only from layers below its own. Users
import from ``asyncflow`` only.
"""

from importlib import import_module as _import_module
from typing import TYPE_CHECKING

# A flow file whose decorators are misused fails as its command line fails: one line, exit 2.
from ._cli._entry import install_definition_hook
from ._imports import IMPORTS as _IMPORTS
from ._version import __version__ as __version__

if TYPE_CHECKING:  # the public names as type checkers see them; at run time, see _LAZY
    from ._client import DataArtifact as DataArtifact
    from ._client import Flow as Flow
    from ._client import Run as Run
    from ._client import Step as Step
    from ._client import Task as Task
    from ._client import alist_flows as alist_flows
    from ._client import list_flows as list_flows
    from ._client._archive import ArchiveManifest as ArchiveManifest
    from ._client._archive import aexport_runs as aexport_runs
    from ._client._archive import aimport_archive as aimport_archive
    from ._client._archive import aread_archive as aread_archive
    from ._client._archive import export_runs as export_runs
    from ._client._archive import import_archive as import_archive
    from ._client._archive import read_archive as read_archive
    from ._client._metadata import default_metadata as default_metadata
    from ._client._metadata import get_metadata as get_metadata
    from ._client._metadata import metadata as metadata
    from ._client._metaflow import Metaflow as Metaflow
    from ._client._namespace import default_namespace as default_namespace
    from ._client._namespace import get_namespace as get_namespace
    from ._client._namespace import namespace as namespace
    from ._client._tidy import GcReport as GcReport
    from ._client._tidy import StoreStats as StoreStats
    from ._client._tidy import agc as agc
    from ._client._tidy import astats as astats
    from ._client._tidy import gc as gc
    from ._client._tidy import stats as stats
    from ._errors import ArtifactLoadError as ArtifactLoadError
    from ._errors import ArtifactNotFoundError as ArtifactNotFoundError
    from ._errors import ArtifactSerializationError as ArtifactSerializationError
    from ._errors import AsyncflowError as AsyncflowError
    from ._errors import AsyncflowWarning as AsyncflowWarning
    from ._errors import FlowValidationError as FlowValidationError
    from ._errors import MergeArtifactsError as MergeArtifactsError
    from ._errors import NamespaceMismatchError as NamespaceMismatchError
    from ._errors import NotFoundError as NotFoundError
    from ._errors import NotSupportedError as NotSupportedError
    from ._errors import ParameterError as ParameterError
    from ._errors import RunsLocallyWarning as RunsLocallyWarning
    from ._errors import StepFailed as StepFailed
    from ._errors import StoreError as StoreError
    from ._errors import StoreFormatError as StoreFormatError
    from ._errors import UntrustedArtifactError as UntrustedArtifactError
    from ._errors import UsageError as UsageError
    from ._errors import WorkerLostError as WorkerLostError
    from ._flowspec import FlowSpec as FlowSpec
    from ._runner import RunHandle as RunHandle
    from ._runner import Runner as Runner
    from ._runtime._current import current as current
    from ._runtime._spin import SpinResult as SpinResult
    from ._spec._cards import card as card
    from ._spec._config import Config as Config
    from ._spec._config import ConfigValue as ConfigValue
    from ._spec._config import config_expr as config_expr
    from ._spec._decorators import catch as catch
    from ._spec._decorators import executor as executor
    from ._spec._decorators import retry as retry
    from ._spec._decorators import timeout as timeout
    from ._spec._mutators import FlowMutator as FlowMutator
    from ._spec._mutators import StepMutator as StepMutator
    from ._spec._packages import conda as conda
    from ._spec._packages import conda_base as conda_base
    from ._spec._packages import pypi as pypi
    from ._spec._packages import pypi_base as pypi_base
    from ._spec._params import IncludeFile as IncludeFile
    from ._spec._params import JSONType as JSONType
    from ._spec._params import Parameter as Parameter
    from ._spec._placement import batch as batch
    from ._spec._placement import environment as environment
    from ._spec._placement import kubernetes as kubernetes
    from ._spec._placement import resources as resources
    from ._spec._project import project as project
    from ._spec._settings import Resources as Resources
    from ._spec._step import step as step

# Every public name, by the module defining it: imported on first use (PEP 562), so that
# `import asyncflow` stays cheap and defining a flow never pays for the runtime, the client,
# asyncio or SQLite (tests/test_startup.py keeps it so).
_LAZY: dict[str, str] = {
    "ArchiveManifest": "._client._archive",
    "ArtifactLoadError": "._errors",
    "ArtifactNotFoundError": "._errors",
    "ArtifactSerializationError": "._errors",
    "AsyncflowError": "._errors",
    "AsyncflowWarning": "._errors",
    "Config": "._spec._config",
    "ConfigValue": "._spec._config",
    "DataArtifact": "._client",
    "Flow": "._client",
    "FlowMutator": "._spec._mutators",
    "FlowSpec": "._flowspec",
    "FlowValidationError": "._errors",
    "GcReport": "._client._tidy",
    "IncludeFile": "._spec._params",
    "JSONType": "._spec._params",
    "MergeArtifactsError": "._errors",
    "Metaflow": "._client._metaflow",
    "NamespaceMismatchError": "._errors",
    "NotFoundError": "._errors",
    "NotSupportedError": "._errors",
    "Parameter": "._spec._params",
    "ParameterError": "._errors",
    "Resources": "._spec._settings",
    "Run": "._client",
    "RunHandle": "._runner",
    "Runner": "._runner",
    "RunsLocallyWarning": "._errors",
    "SpinResult": "._runtime._spin",
    "Step": "._client",
    "StepFailed": "._errors",
    "StepMutator": "._spec._mutators",
    "StoreError": "._errors",
    "StoreFormatError": "._errors",
    "StoreStats": "._client._tidy",
    "Task": "._client",
    "UntrustedArtifactError": "._errors",
    "UsageError": "._errors",
    "WorkerLostError": "._errors",
    "aexport_runs": "._client._archive",
    "agc": "._client._tidy",
    "aimport_archive": "._client._archive",
    "alist_flows": "._client",
    "aread_archive": "._client._archive",
    "astats": "._client._tidy",
    "batch": "._spec._placement",
    "card": "._spec._cards",
    "catch": "._spec._decorators",
    "conda": "._spec._packages",
    "conda_base": "._spec._packages",
    "config_expr": "._spec._config",
    "current": "._runtime._current",
    "default_metadata": "._client._metadata",
    "default_namespace": "._client._namespace",
    "environment": "._spec._placement",
    "executor": "._spec._decorators",
    "export_runs": "._client._archive",
    "gc": "._client._tidy",
    "get_metadata": "._client._metadata",
    "get_namespace": "._client._namespace",
    "import_archive": "._client._archive",
    "kubernetes": "._spec._placement",
    "list_flows": "._client",
    "metadata": "._client._metadata",
    "namespace": "._client._namespace",
    "project": "._spec._project",
    "pypi": "._spec._packages",
    "pypi_base": "._spec._packages",
    "read_archive": "._client._archive",
    "resources": "._spec._placement",
    "retry": "._spec._decorators",
    "stats": "._client._tidy",
    "step": "._spec._step",
    "timeout": "._spec._decorators",
}

if not TYPE_CHECKING:  # hidden from type checkers, so a typo stays a type error

    def __getattr__(name: str) -> object:
        """A public name, imported on first use; ``from asyncflow import S3`` (a Metaflow
        name asyncflow does not provide) raises NotSupportedError saying why and what to use
        instead."""
        module = _LAZY.get(name)
        if module is not None:
            with _IMPORTS:  # threads using asyncflow for the first time at once: see _imports
                value = getattr(_import_module(module, __name__), name)
            globals()[name] = value  # later reads skip this function
            return value
        from ._spec._refused import refusal

        error = refusal(name)
        if error is None:
            raise AttributeError(f"module 'asyncflow' has no attribute {name!r}")
        raise error

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))


install_definition_hook()
del install_definition_hook

__all__ = [
    "ArchiveManifest",
    "ArtifactLoadError",
    "ArtifactNotFoundError",
    "ArtifactSerializationError",
    "AsyncflowError",
    "AsyncflowWarning",
    "Config",
    "ConfigValue",
    "DataArtifact",
    "Flow",
    "FlowMutator",
    "FlowSpec",
    "FlowValidationError",
    "GcReport",
    "IncludeFile",
    "JSONType",
    "MergeArtifactsError",
    "Metaflow",
    "NamespaceMismatchError",
    "NotFoundError",
    "NotSupportedError",
    "Parameter",
    "ParameterError",
    "Resources",
    "Run",
    "RunHandle",
    "Runner",
    "RunsLocallyWarning",
    "SpinResult",
    "Step",
    "StepFailed",
    "StepMutator",
    "StoreError",
    "StoreFormatError",
    "StoreStats",
    "Task",
    "UntrustedArtifactError",
    "UsageError",
    "WorkerLostError",
    "aexport_runs",
    "agc",
    "aimport_archive",
    "alist_flows",
    "aread_archive",
    "astats",
    "batch",
    "card",
    "catch",
    "conda",
    "conda_base",
    "config_expr",
    "current",
    "default_metadata",
    "default_namespace",
    "environment",
    "executor",
    "export_runs",
    "gc",
    "get_metadata",
    "get_namespace",
    "import_archive",
    "kubernetes",
    "list_flows",
    "metadata",
    "namespace",
    "project",
    "pypi",
    "pypi_base",
    "read_archive",
    "resources",
    "retry",
    "stats",
    "step",
    "timeout",
]
