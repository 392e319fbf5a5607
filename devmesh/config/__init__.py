"""`devmesh.yaml`: the project file, parsed into a validated model.

Every error names the file, the line, the dotted field and what was expected, e.g.
``devmesh.yaml:14: services.api.port: expected an integer 1–65535, got "http"``.

The parts: :mod:`.schema` (the models) with :mod:`.fields` (checked field types),
:mod:`.reload` and :mod:`.resilience` (a service's reload action and traffic policy);
:mod:`.yamlfile` (bounded YAML reading, with the line of every key) and :mod:`.diagnostics`
(locations, and pydantic's errors in devmesh's words); :mod:`.load` (finding and loading).
"""

from __future__ import annotations

from devmesh.config.diagnostics import ConfigErrors
from devmesh.config.fields import DEFAULT_ENVOY_IMAGE, DEVMESH_ENV_VARS, RESERVED_ENV_PREFIX
from devmesh.config.load import find_config, load_project, load_text
from devmesh.config.reload import LINUX_SIGNALS, ReloadAction
from devmesh.config.resilience import (
    RETRY_CONDITIONS,
    CircuitBreakerSettings,
    OutlierDetectionSettings,
    ResilienceSettings,
    RetrySettings,
)
from devmesh.config.schema import (
    CONFIG_NAME,
    Cluster,
    DockerSettings,
    Manifests,
    Project,
    Routing,
    Service,
    SyncRule,
)
from devmesh.config.yamlfile import parse_yaml

__all__ = [
    "CONFIG_NAME", "DEFAULT_ENVOY_IMAGE", "DEVMESH_ENV_VARS", "LINUX_SIGNALS", "RESERVED_ENV_PREFIX",
    "RETRY_CONDITIONS", "CircuitBreakerSettings", "Cluster", "ConfigErrors", "DockerSettings",
    "Manifests", "OutlierDetectionSettings", "Project", "ReloadAction", "ResilienceSettings",
    "RetrySettings", "Routing", "Service", "SyncRule", "find_config", "load_project", "load_text",
    "parse_yaml",
]
