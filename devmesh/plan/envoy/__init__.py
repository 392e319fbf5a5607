"""RoutePlan → Envoy configuration for the docker runtime. Pure, except ``write_atomically``.

The parts: :mod:`.render` (the plan as one Envoy's bootstrap and listeners) with
:mod:`.clusters` and :mod:`.routes` (its clusters and route tables); :mod:`.files` (the files
and how they are written into place); :mod:`.admin` (readiness from Envoy's admin interface).

The docker runtime runs one Envoy per app. It holds every service's name as a network alias and
listens on every service port, so a call to ``http://api:8000/`` from any container reaches
Envoy, which routes it by the plan's rules for ``api`` — the header rules first, the baseline
last — exactly as the Istio sidecars do on the kind runtime. A gateway listener serves the
preview hosts (``<env>.<app>.<domain>``): it sets the routing header and sends the request to the
entry service.

Files (all in one directory that Envoy watches; no control plane):

``bootstrap.yaml``
    static: node, admin, and where the dynamic files are (``config_dir`` is the directory as
    Envoy sees it, e.g. the mount point inside the container).
``cds.yaml``
    one cluster per backend, named ``<service>.<env>``.
``rds-mesh.yaml``
    the route table of every service port: one virtual host per service (domains ``name``,
    ``name:port``), its routes in the plan's rule order; unknown hosts get a 404 that says so.
``rds-gateway.yaml``
    the gateway's route table: one virtual host per preview host, ``*`` for any other host.
``lds.yaml``
    one listener per distinct service port plus the gateway listener; each refers to its route
    table by name (RDS).

Why routes are separate files (RDS) rather than inline in the listeners: Envoy replaces a
listener whose config changed and *drains* the old one — keep-alive connections opened before
the change keep the old routes until they close (up to ``--drain-time-s``, 600 s by default).
Services pool their connections to each other, so a new environment would be invisible to them
for minutes. A route-table update applies to the next request on every existing connection.

Every response carries ``x-devmesh-route: <rule name>`` (the rule that matched) and
``x-devmesh-upstream: <service>.<env>`` (the cluster that answered), so ``routes --explain``
and debugging can compare what the plan says with what Envoy did. Access logs go to Envoy's
stdout, one JSON line a request (and one a mirror copy, from the router's upstream log), in the
format of ``devmesh.traffic.records``: ``devmesh traffic`` reads them into hop chains.

Envoy reloads a file only when it is *renamed* into place (an in-place overwrite is never
noticed): ``write_atomically`` writes each changed file to a temporary file in the same
directory and ``os.replace``-s it, clusters before routes before listeners (and clusters that
go away only after the routes that named them).
"""

from __future__ import annotations

from devmesh.plan.envoy.admin import parse_cluster_health
from devmesh.plan.envoy.clusters import (
    CONNECT_TIMEOUT,
    DNS_REFRESH,
    HEALTH_INTERVAL,
    HEALTH_TIMEOUT,
    cluster_name,
    cluster_policy,
)
from devmesh.plan.envoy.files import (
    BOOTSTRAP_FILE,
    CDS_FILE,
    LDS_FILE,
    Doc,
    EnvoyFiles,
    cluster_names,
    rds_file,
    to_yaml,
    write_atomically,
)
from devmesh.plan.envoy.render import GATEWAY_LISTENER, AddressOf, envoy_args, render_envoy
from devmesh.plan.envoy.routes import (
    GATEWAY_ROUTES,
    MESH_ROUTES,
    ROUTE_HEADER,
    UNKNOWN_HOST_ROUTE,
    UPSTREAM_HEADER,
    route_policy,
)

__all__ = [
    "BOOTSTRAP_FILE", "CDS_FILE", "CONNECT_TIMEOUT", "DNS_REFRESH", "GATEWAY_LISTENER",
    "GATEWAY_ROUTES", "HEALTH_INTERVAL", "HEALTH_TIMEOUT", "LDS_FILE", "MESH_ROUTES",
    "ROUTE_HEADER", "UNKNOWN_HOST_ROUTE", "UPSTREAM_HEADER", "AddressOf", "Doc", "EnvoyFiles",
    "cluster_name", "cluster_names", "cluster_policy", "envoy_args", "parse_cluster_health",
    "rds_file", "render_envoy", "route_policy", "to_yaml", "write_atomically",
]
