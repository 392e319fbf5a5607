"""The docker runtime's one Envoy: its files from the RoutePlan, its container, its admin API.

Envoy holds every service's name as a network alias, listens on every service port and routes
each hop by the plan; its gateway is published on 127.0.0.1 only, its admin port on a free
port of 127.0.0.1. A running Envoy picks new files up by itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

import docker.errors

from devmesh.errors import DevmeshError, UserInputError
from devmesh.naming import BASELINE_ENV
from devmesh.plan.envoy import envoy_args, parse_cluster_health, render_envoy, write_atomically
from devmesh.plan.routing import RoutePlan
from devmesh.runtime.docker.app import (
    ENVOY_ADMIN_PORT,
    ENVOY_CONFIG_DIR,
    ENVOY_GATEWAY_PORT,
    SPEC_LABEL,
    DockerApp,
    backend_alias,
    envoy_image,
)

if TYPE_CHECKING:
    from devmesh.config import Project


class EnvoyMesh(DockerApp):
    """The Envoy part of a project's docker runtime."""

    project: Project

    def _envoy_files(self, plan: RoutePlan) -> Any:
        try:
            return render_envoy(
                plan,
                address_of=lambda b: (backend_alias(b), self.project.port_of(b.service)),
                gateway_port=ENVOY_GATEWAY_PORT,
                admin_port=ENVOY_ADMIN_PORT,
                config_dir=ENVOY_CONFIG_DIR,
            )
        except ValueError as exc:  # a service port that Envoy itself needs
            raise UserInputError(f"{self.project.path.name}: {exc}") from None

    def _apply_routes(self, plan: RoutePlan, act: Any, *, ensure_envoy: bool = True) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        # A running Envoy warms new clusters before routes name them (no 503 while it does);
        # a new Envoy reads everything at start.
        running = self.envoy_admin_url() is not None and bool(self.cluster_health())
        await_clusters = self._await_clusters if running else None
        if write_atomically(self.config_dir, self._envoy_files(plan), await_clusters=await_clusters):
            act(f"routes updated: {len(plan.environments)} environment(s) beside the baseline")
        if ensure_envoy:
            self._ensure_envoy(act)

    def _await_clusters(self, names: frozenset[str], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not names <= set(self.cluster_health()):
            time.sleep(0.01)

    def _ensure_envoy(self, act: Any) -> None:
        image = envoy_image(self.project)
        aliases = sorted(self.project.services)
        spec = {"image": image, "aliases": aliases, "gateway": self.project.routing.gateway_port,
                "config": str(self.config_dir)}
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        for c in self._containers(role="envoy"):
            if c.labels.get(SPEC_LABEL) == digest:
                if c.status != "running":
                    c.start()
                    act(f"started {c.name}")
                return
            c.remove(force=True, v=True)
        self._ensure_image_present(image)
        api = self.client.api
        # The SDK takes {network: endpoint config}; its type stubs say one endpoint config.
        networking = api.create_networking_config(
            {self.network_name: api.create_endpoint_config(aliases=aliases)}  # type: ignore[arg-type]
        )
        host_config = api.create_host_config(
            network_mode=self.network_name,
            binds={str(self.config_dir): {"bind": ENVOY_CONFIG_DIR, "mode": "ro"}},
            port_bindings={
                ENVOY_GATEWAY_PORT: ("127.0.0.1", self.project.routing.gateway_port),
                ENVOY_ADMIN_PORT: ("127.0.0.1", None),
            },
        )
        try:
            created = api.create_container(
                image=image,
                name=self.envoy_name,
                entrypoint=["envoy"],
                command=envoy_args(ENVOY_CONFIG_DIR),
                labels=self._labels(BASELINE_ENV, role="envoy") | {SPEC_LABEL: digest},
                ports=[ENVOY_GATEWAY_PORT, ENVOY_ADMIN_PORT],
                host_config=host_config,
                networking_config=networking,
            )
            api.start(created["Id"])
        except Exception as exc:
            if "port is already allocated" in str(exc) or "address already in use" in str(exc):
                self._remove_quietly(self.envoy_name)
                raise UserInputError(
                    f"gateway port {self.project.routing.gateway_port} on 127.0.0.1 is already in use",
                    hint=f"stop what uses it, or set routing.gateway_port in {self.project.path.name}",
                ) from None
            raise
        act(f"started {self.envoy_name} (gateway on 127.0.0.1:{self.project.routing.gateway_port})")

    def _remove_quietly(self, name: str) -> None:
        try:
            self.client.containers.get(name).remove(force=True, v=True)
        except docker.errors.NotFound:
            pass

    def _ensure_image_present(self, image: str) -> None:
        try:
            self.client.images.get(image)
        except docker.errors.ImageNotFound:
            try:
                self.client.images.pull(image)
            except docker.errors.APIError as exc:
                raise DevmeshError(
                    f"the Envoy image {image} is not on this machine and could not be pulled: "
                    f"{exc.explanation or exc}",
                    hint="set DEVMESH_ENVOY_IMAGE or docker.envoy_image in devmesh.yaml to an image you have",
                ) from None


    def envoy_admin_url(self) -> str | None:
        for c in self._containers(role="envoy"):
            c.reload()
            bindings = (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{ENVOY_ADMIN_PORT}/tcp")
            if bindings:
                return f"http://127.0.0.1:{bindings[0]['HostPort']}"
        return None

    def active_requests(self, url: str, cluster: str) -> int | None:
        """Requests Envoy (admin at ``url``) has sent to ``cluster`` that are not answered yet;
        None when the admin does not answer or knows no such cluster."""
        query = urllib.parse.urlencode({"format": "json",
                                        "filter": f"^cluster\\.{re.escape(cluster)}\\.upstream_rq_active$"})
        try:
            with urllib.request.urlopen(f"{url}/stats?{query}", timeout=2) as resp:
                stats = json.loads(resp.read().decode()).get("stats") or []
        except (urllib.error.URLError, OSError, ValueError):
            return None
        values = [s.get("value") for s in stats if isinstance(s, dict)]
        return int(values[0]) if values and isinstance(values[0], int) else None

    def cluster_health(self) -> dict[str, bool]:
        """Envoy's view of each backend: healthy or not (empty when Envoy is not reachable)."""
        url = self.envoy_admin_url()
        if url is None:
            return {}
        try:
            with urllib.request.urlopen(f"{url}/clusters?format=json", timeout=2) as resp:
                return parse_cluster_health(resp.read().decode())
        except (urllib.error.URLError, OSError, ValueError):
            return {}
