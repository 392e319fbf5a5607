"""`devmesh.yaml`'s models: the project, its services and their settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr

from devmesh.config.fields import (
    DEFAULT_ENVOY_IMAGE,
    AppName,
    BranchName,
    BuildArgName,
    ClusterName,
    ContainerPath,
    ContextPath,
    DockerfilePath,
    Domain,
    EnvName,
    EnvValue,
    HeaderName,
    ImagePrefix,
    ImageRef,
    KubeContext,
    Pattern,
    Port,
    PresetName,
    RegistryHost,
    RelativePath,
    RepoPath,
    RepoURL,
    ServiceName,
    Scalar,
    StrictModel,
)
from devmesh.config.reload import Reload
from devmesh.config.resilience import ResilienceSettings

CONFIG_NAME = "devmesh.yaml"


class SyncRule(StrictModel):
    """Copy files under ``src`` (relative to the build context) to ``dest`` in the container."""

    src: ContextPath
    dest: ContainerPath


class Service(StrictModel):
    context: RelativePath = "."
    # Relative to the context; may lie outside it (``../docker/api.Dockerfile``) but not
    # outside the project.
    dockerfile: DockerfilePath = "Dockerfile"
    port: Port | None = None
    entry: bool = False
    preset: PresetName | None = None
    values: dict[str, Scalar] = Field(default_factory=dict)
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    build_args: dict[BuildArgName, EnvValue] = Field(default_factory=dict)
    # None: read from the Dockerfile's COPY/ADD (devmesh.dockerfile.infer); [] for none at all.
    sync: list[SyncRule] | None = None
    rebuild_on: list[Pattern] = Field(default_factory=list)
    # After a sync; None: the preset's, else restart (see devmesh.sync.reload).
    reload: Reload = None
    # Timeouts, retries, circuit breaking, outlier detection (see docs/strategies.md).
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)


class Routing(StrictModel):
    header: HeaderName = "x-devmesh-env"
    domain: Domain = "localhost"
    gateway_port: Port = 8080


class Cluster(StrictModel):
    name: ClusterName = "devmesh"
    config: RelativePath = "kind-config/cluster.yaml"
    context: KubeContext | None = None
    registry: RegistryHost = "127.0.0.1:5001"


class Manifests(StrictModel):
    repo: RepoURL
    path: RepoPath = "."
    branch: BranchName = "main"
    mode: Literal["push", "pull-request"] = "push"
    registry: ImagePrefix | None = None


class DockerSettings(StrictModel):
    envoy_image: ImageRef = DEFAULT_ENVOY_IMAGE


class Project(StrictModel):
    app: AppName
    baseline: BranchName | None = None
    runtime: Literal["auto", "kind", "docker"] = "auto"
    services: dict[ServiceName, Service]
    routing: Routing = Field(default_factory=Routing)
    cluster: Cluster = Field(default_factory=Cluster)
    manifests: Manifests | None = None
    docker: DockerSettings = Field(default_factory=DockerSettings)

    _path: Path = PrivateAttr(default=Path(CONFIG_NAME))

    @property
    def path(self) -> Path:
        """The devmesh.yaml this project was read from."""
        return self._path

    @property
    def root(self) -> Path:
        """The directory holding devmesh.yaml; service contexts are relative to it."""
        return self._path.parent

    @property
    def entry_service(self) -> str:
        """The service behind the preview URL."""
        return next(name for name, svc in self.services.items() if svc.entry)

    def context_dir(self, service: str) -> Path:
        """The build context of ``service`` on disk."""
        return self.root / self.services[service].context

    def dockerfile_path(self, service: str) -> Path:
        """The Dockerfile of ``service`` on disk."""
        return self.context_dir(service) / self.services[service].dockerfile

    def port_of(self, service: str) -> int:
        """The container port of ``service`` (given, or filled in by its preset)."""
        port = self.services[service].port
        assert port is not None, "ports are resolved when the project is loaded"
        return port

