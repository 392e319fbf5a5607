"""The kind runtime: a kind cluster (or an existing one, by context) with a local registry and
Istio, running environments from the objects `devmesh render` prints.

- ``client``: the one thin wrapper devmesh owns around the Kubernetes API (``ClusterClient``);
- ``rollout``: pure reading of a Deployment's rollout from its status and pods;
- ``cluster``: ``devmesh cluster up | down | status`` (kind, the registry, Istio);
- ``publish``: pushing built images to the registry, pinned by digest;
- ``runtime``: ``KindRuntime``, the Runtime protocol on Kubernetes.
"""
