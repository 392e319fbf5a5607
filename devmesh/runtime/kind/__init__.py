"""The kind runtime: a kind cluster (or an existing one, by context) with a local registry and
Istio, running environments from the objects `devmesh render` prints.

- ``client``: the one thin wrapper devmesh owns around the Kubernetes API, under one name:
  ``protocol`` (``ClusterClient``), ``errors``, ``resources`` (where each kind lives),
  ``kube`` (``KubeClient`` over HTTP) and ``kubeconfig`` (``open_client``);
- ``rollout``: pure reading of a Deployment's rollout from its status and pods;
- ``cluster``: ``devmesh cluster up | down`` (kind, the registry, Istio), on top of
  ``cluster_view`` (``devmesh cluster status``: each part and its health), ``layout`` (the
  pinned Istio line, names, ports, paths), ``kind_config`` (the kind configuration) and
  ``tools`` (running kind, docker, istioctl);
- ``publish``: pushing built images to the registry, pinned by digest;
- ``runtime``: ``KindRuntime``, the Runtime protocol on Kubernetes.
"""
