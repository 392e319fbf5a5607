"""The kind configuration a cluster is created with: the project's (or devmesh's own) with every
port mapping on 127.0.0.1, the gateway's NodePort on the gateway port, containerd reading
``certs.d``; a configuration that would do otherwise is the user's error, in one line."""

from __future__ import annotations

from typing import Any

import yaml

from devmesh.errors import UserInputError
from devmesh.runtime.kind.layout import CERTS_DIR, GATEWAY_NODE_PORT


def effective_kind_config(text: str, gateway_port: int, source: str) -> dict[str, Any]:
    """The kind configuration to create the cluster with: every port mapping on 127.0.0.1,
    the gateway's NodePort mapped to ``gateway_port``, containerd reading ``certs.d``."""
    try:
        config = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserInputError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(config, dict) or config.get("kind") != "Cluster":
        raise UserInputError(f"{source}: expected a kind Cluster configuration ('kind: Cluster')")
    nodes = config.setdefault("nodes", [{"role": "control-plane"}])
    if not isinstance(nodes, list) or not nodes:
        raise UserInputError(f"{source}: nodes: expected a list of nodes")
    mapped = False
    for i, node in enumerate(nodes):
        for j, mapping in enumerate(node.get("extraPortMappings") or ()):
            where = f"{source}: nodes[{i}].extraPortMappings[{j}]"
            address = mapping.setdefault("listenAddress", "127.0.0.1")
            if address not in ("127.0.0.1", "::1"):
                raise UserInputError(
                    f"{where}: listenAddress {address!r} would publish the port beyond this "
                    "machine; devmesh binds port mappings to 127.0.0.1 only",
                    hint="remove listenAddress or set it to 127.0.0.1")
            if mapping.get("containerPort") == GATEWAY_NODE_PORT:
                mapping["hostPort"] = gateway_port
                mapped = True
    if not mapped:
        first = next((n for n in nodes if n.get("role", "control-plane") == "control-plane"), nodes[0])
        first.setdefault("extraPortMappings", []).append(
            {"containerPort": GATEWAY_NODE_PORT, "hostPort": gateway_port,
             "listenAddress": "127.0.0.1", "protocol": "TCP"})
    patches = config.setdefault("containerdConfigPatches", [])
    if not any(CERTS_DIR in str(p) for p in patches):
        patches.append(f'[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "{CERTS_DIR}"')
    return config
