"""asyncflow: Metaflow-style flows as an embedded async library, stored in one SQLite file.

Layers (checked by import-linter, see pyproject.toml): ``_cli`` on top; then ``_runtime``
(run flows) and ``_client`` (read runs); then ``_spec`` (define flows, pure) and ``_store``
(the only SQL); then ``_codecs`` (values to bytes, pure); then ``_errors``. A module may
import only from layers below its own. Users import from ``asyncflow`` only.
"""

from ._errors import ArtifactNotFoundError as ArtifactNotFoundError
from ._errors import ArtifactSerializationError as ArtifactSerializationError
from ._errors import AsyncflowError as AsyncflowError
from ._errors import FlowValidationError as FlowValidationError
from ._errors import MergeArtifactsError as MergeArtifactsError
from ._errors import NotFoundError as NotFoundError
from ._errors import ParameterError as ParameterError
from ._errors import StepFailed as StepFailed
from ._errors import StoreError as StoreError
from ._errors import StoreFormatError as StoreFormatError
from ._spec._step import step as step

__version__ = "0.1.0"

__all__ = [
    "ArtifactNotFoundError",
    "ArtifactSerializationError",
    "AsyncflowError",
    "FlowValidationError",
    "MergeArtifactsError",
    "NotFoundError",
    "ParameterError",
    "StepFailed",
    "StoreError",
    "StoreFormatError",
    "step",
]
