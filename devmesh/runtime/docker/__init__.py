"""The docker runtime: each service version is a container on a per-app network; one Envoy
container holds every service's name as a network alias, listens on every service port and
routes each hop by the RoutePlan. Its gateway is published on 127.0.0.1 only.

- ``app``: the app's containers and network found by their labels alone (``DockerApp``: what
  ``down``, ``ls`` and ``logs`` need without the project);
- ``envoy``: Envoy's files, container and admin API;
- ``runtime``: ``DockerRuntime``, the ``devmesh.runtime.base.Runtime`` of the docker runtime;
- ``sync``: live sync into the containers.
"""

from devmesh.runtime.docker.app import DockerApp, ServiceCrashed, backend_alias, envoy_image
from devmesh.runtime.docker.runtime import DockerRuntime
from devmesh.runtime.docker.sync import DockerTransport

__all__ = ["DockerApp", "DockerRuntime", "DockerTransport", "ServiceCrashed", "backend_alias", "envoy_image"]
