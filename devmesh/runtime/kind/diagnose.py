"""What a failed ``kind create cluster`` means, in one line with what to do, read from kind's
own output; and the one failure that can be seen before creating anything: a node image whose
kubelet refuses the host's cgroup v1."""

from __future__ import annotations

import re

from devmesh.errors import DevmeshError, UserInputError

# kind releases from 0.31 on default to a node image of Kubernetes 1.35 or newer (0.30: 1.34).
FIRST_KIND_MINOR_DEFAULTING_TO_1_35 = 31
# Kubernetes 1.35 and newer refuse to start a kubelet on a cgroup v1 host (KEP-5573).
FIRST_MINOR_WITHOUT_CGROUP_V1 = 35

_CAPS = "unable to apply caps: operation not permitted"
_IN_USE = re.compile(r"listen tcp[46]? ([0-9.:\[\]a-f]+):(\d+): bind: address already in use"
                     r"|Bind for ([0-9.:\[\]a-f]+):(\d+) failed: port is already allocated")
_PULL = re.compile(r'failed to pull image "([^"]+)"')
_KUBEADM = "failed to init node with kubeadm"


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def kind_create_failure(output: str, *, node: str, gateway_port: int, source: str) -> DevmeshError | None:
    """The user's error for a failed ``kind create cluster`` (``output``: its stderr), or None
    when the output shows no failure devmesh knows."""
    if _CAPS in output:
        return DevmeshError(
            "the Docker engine cannot start privileged containers, which kind's nodes are: it "
            "asks runc for capabilities this machine withholds (\"unable to apply caps\")",
            hint="a Docker engine of 23.0 or newer asks only for what the machine allows; with an "
                 "older one, make dockerd's default runtime a runc that drops the missing "
                 "capabilities (docs/kind.md, \"Privileged containers\")")
    if match := _IN_USE.search(output):
        host = match.group(1) or match.group(3)
        port = int(match.group(2) or match.group(4))
        if port == gateway_port:
            return DevmeshError(
                f"{host}:{port} is in use, so kind cannot publish the gateway there",
                hint="stop what listens there, or set routing.gateway_port in devmesh.yaml to a "
                     "free port (the cluster takes it when it is created)")
        return DevmeshError(f"{host}:{port} is in use, so kind cannot publish a port mapping of {source} there",
                            hint=f"stop what listens there, or change that mapping's hostPort in {source}")
    if match := _PULL.search(output):
        return DevmeshError(
            f"kind could not pull its node image {match.group(1)}: {_last_line(output)}",
            hint=f"on a machine that cannot reach the registry, load the image first (docker load) "
                 f"or name one that is here in {source} (nodes[].image)")
    if _KUBEADM in output:
        # kubeadm's own verdict; the lines after it are its advice on finding the container.
        phase = re.search(r"error execution phase [^\n]*", output)
        return DevmeshError(
            f"kubeadm could not start Kubernetes on node {node}: "
            f"{phase.group(0) if phase else _last_line(output)}",
            hint="a node too slow or short of memory, or a kubelet that refuses this host, ends so; "
                 f"'kind create cluster --retain --config <file>' keeps the node to read "
                 f"'docker exec {node} journalctl -u kubelet'")
    return None


def kubernetes_minor(image: str) -> int | None:
    """``kindest/node:v1.34.4@sha256:…`` → 34; None when the tag is not a version."""
    tag = image.split("@", 1)[0].rpartition(":")[2]
    match = re.fullmatch(r"v?1\.(\d+)(\.\d+)?.*", tag)
    return int(match.group(1)) if match else None


def kind_minor(version_output: str) -> int | None:
    """``kind v0.33.0 go1.26.8 linux/amd64`` → 33."""
    match = re.search(r"\bv0\.(\d+)\.", version_output)
    return int(match.group(1)) if match else None


def cgroup_v1_refusal(*, cgroup_version: str, images: list[str | None], kind_version: str,
                      source: str) -> UserInputError | None:
    """The error for a node image whose kubelet will refuse a cgroup v1 host, before kind
    spends minutes finding out; None when the host or the images are fine. ``images``: each
    node's ``image`` of the configuration (None: kind's default)."""
    if cgroup_version.strip() != "1":
        return None
    for image in images:
        if image is None:
            minor = kind_minor(kind_version)
            if minor is None or minor < FIRST_KIND_MINOR_DEFAULTING_TO_1_35:
                continue
            what = (f"no node image is named, and kind 0.{minor}'s default is Kubernetes "
                    f"1.{FIRST_MINOR_WITHOUT_CGROUP_V1} or newer")
            pin = "nodes[].image: kindest/node:v1.34.0 or another 1.34 one"
        else:
            minor = kubernetes_minor(image)
            if minor is None or minor < FIRST_MINOR_WITHOUT_CGROUP_V1:
                continue
            what, pin = f"node image {image} is Kubernetes 1.{minor}", "nodes[].image"
        return UserInputError(
            f"{source}: {what}, whose kubelet refuses the cgroup v1 this Docker host runs",
            hint=f"pin a Kubernetes 1.34 node image there ({pin}), or move the host to cgroup v2")
    return None


_NOT_READY = re.compile(r"resources not ready after (\S+?):")
_WAITING = re.compile(r"^\s+(\w+/[\w.-]+/[\w.-]+) \((.*)\)", re.M)
_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName")


def istio_install_failure(output: str, *, config: str) -> DevmeshError | None:
    """The user's error for an ``istioctl install`` whose workloads did not become ready
    (``output``: its stderr, which names each one and why), or None for another failure."""
    match = _NOT_READY.search(output)
    if match is None:
        return None
    # "  Deployment/istio-system/istiod (container failed to start: ErrImagePull: …)", once in
    # the progress and again in the final error; the progress's last one runs on into "Error:".
    waiting: list[str] = []
    for found in _WAITING.finditer(output):
        line = f"{found.group(1)}: {found.group(2).strip()}"
        if line not in waiting:
            waiting.append(line)
    what = "; ".join(waiting) or "istioctl names none"
    if any(reason in line for line in waiting for reason in _PULL_REASONS):
        hint = ("the node cannot pull Istio's images: give it a registry it can reach, or load the "
                f"images into the node (kind load docker-image) and name them with hub and tag in {config}")
    else:
        hint = ("'kubectl -n istio-system describe pods' says why; on a slow or busy machine, run "
                "'devmesh cluster up' again: it picks up where this stopped")
    return DevmeshError(f"Istio did not become ready within {match.group(1)}: {what}", hint=hint)
