"""The one thin wrapper devmesh owns around the Kubernetes API.

Everything the kind runtime, ``devmesh cluster`` and live sync do to a cluster goes through
``ClusterClient``: server-side apply (field manager ``devmesh``), get, list and delete by label
selector, pod log streams, exec with stdin, rollout status. ``KubeClient`` implements it with
the kubernetes Python client's generic request path (no per-kind generated methods, so Istio's
objects and core objects travel the same way); tests use a faithful in-memory fake of the same
protocol. Objects are plain dicts, exactly as the API serves them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import quote

from devmesh.errors import DevmeshError
from devmesh.plan.k8s import FIELD_MANAGER
from devmesh.runtime.kind.rollout import Rollout, assess

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

Obj = dict[str, Any]

APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
REQUEST_TIMEOUT = 30.0


class ClusterError(DevmeshError):
    """The cluster refused a request; ``status`` is the HTTP status (0 when it never answered)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "",
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class ClusterUnreachable(ClusterError):
    """The API server of the context does not answer, or the context does not exist.

    ``server`` names the API server ("the API server of context 'x' (https://…)") and ``why``
    says in a few words what happened ("connection refused"), so that a caller can say the
    same in its own sentence (see devmesh.runtime.kind.progress); both are empty when no
    request was sent.
    """

    def __init__(self, message: str, *, hint: str | None = None, server: str = "", why: str = "") -> None:
        super().__init__(message, hint=hint)
        self.server = server
        self.why = why


class KubeconfigError(ClusterUnreachable):
    """The kubeconfig, or the context named in it, does not exist or cannot be used: the
    user's input, so exit status 2."""

    exit_code = 2


class ApplyConflict(ClusterError):
    """Server-side apply found fields another manager owns (only when not forcing)."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class Resource:
    """Where a kind of object lives in the API."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None, name: str | None = None) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespaced:
            if not namespace:
                raise ValueError(f"{self.kind} is namespaced: a namespace is required")
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        return base + (f"/{quote(name, safe='')}" if name else "")


# The kinds devmesh reads or writes. A fixed table keeps the wrapper free of discovery calls.
RESOURCES: dict[tuple[str, str], Resource] = {
    (r.api_version, r.kind): r
    for r in (
        Resource("v1", "Namespace", "namespaces", False),
        Resource("v1", "Service", "services", True),
        Resource("v1", "ConfigMap", "configmaps", True),
        Resource("v1", "Pod", "pods", True),
        Resource("apps/v1", "Deployment", "deployments", True),
        Resource("apps/v1", "ReplicaSet", "replicasets", True),
        Resource("networking.istio.io/v1", "VirtualService", "virtualservices", True),
        Resource("networking.istio.io/v1", "DestinationRule", "destinationrules", True),
        Resource("networking.istio.io/v1", "Gateway", "gateways", True),
    )
}


def resource(api_version: str, kind: str) -> Resource:
    try:
        return RESOURCES[(api_version, kind)]
    except KeyError:
        raise ValueError(f"devmesh does not handle {kind} ({api_version})") from None


@runtime_checkable
class ClusterClient(Protocol):
    """What devmesh asks of a Kubernetes cluster. ``KubeClient`` and the test fake implement it."""

    @property
    def context(self) -> str: ...

    def server_version(self) -> str:
        """The API server's version (``v1.33.1``); raises ClusterUnreachable when it is down."""
        ...

    def apply(self, obj: Obj, *, force: bool = True) -> Obj:
        """Server-side apply ``obj`` as field manager ``devmesh``; the object as stored."""
        ...

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The object, or None when it does not exist."""
        ...

    def list(self, api_version: str, kind: str, *, namespace: str | None = None,
             selector: str = "") -> list[Obj]:
        """Objects of a kind (in ``namespace``, or everywhere) matching a label selector."""
        ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        """Delete in the background; False when it did not exist."""
        ...

    def pod_logs(self, namespace: str, pod: str, *, container: str, follow: bool = False,
                 tail: int | None = None, previous: bool = False,
                 timestamps: bool = True) -> Iterator[str]:
        """A container's log lines (with an RFC 3339 timestamp first when ``timestamps``)."""
        ...

    def exec(self, namespace: str, pod: str, command: Sequence[str], *, container: str,
             stdin: bytes | None = None, timeout: float = 60.0) -> ExecResult:
        """Run ``command`` in a container, feeding ``stdin`` and closing it; wait for the exit."""
        ...

    def rollout_status(self, namespace: str, name: str) -> Rollout:
        """How far the Deployment ``name`` has rolled out, and why it is stuck if it is."""
        ...

    def close(self) -> None: ...


def _selector_query(selector: str) -> list[tuple[str, str]]:
    return [("labelSelector", selector)] if selector else []


def _status_message(data: bytes) -> tuple[str, str]:
    """The message and reason of a Kubernetes Status body (or the raw text)."""
    try:
        body = json.loads(data or b"{}")
    except ValueError:
        return data.decode(errors="replace").strip()[:500], ""
    if isinstance(body, dict):
        return str(body.get("message") or ""), str(body.get("reason") or "")
    return "", ""


def rollout_from(client: ClusterClient, namespace: str, name: str) -> Rollout:
    """``rollout_status`` on top of get and list (shared by every ClusterClient)."""
    deployment = client.get("apps/v1", "Deployment", name, namespace)
    if deployment is None:
        return Rollout("failed", "NotFound", f"deployment {namespace}/{name} does not exist")
    match = (deployment.get("spec") or {}).get("selector", {}).get("matchLabels") or {}
    selector = ",".join(f"{k}={v}" for k, v in sorted(match.items()))
    pods = client.list("v1", "Pod", namespace=namespace, selector=selector) if selector else []
    return assess(deployment, pods)


def _cause(exc: BaseException) -> BaseException:
    """The innermost error urllib3 wraps (its retries wrap the real one, several levels deep)."""
    seen = exc
    while True:
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = seen.__cause__ or seen.__context__
        if not isinstance(inner, BaseException) or inner is seen:
            return seen
        seen = inner


def unreachable(context: str, host: str, exc: BaseException) -> ClusterUnreachable:
    """One line for a request that got no answer: refused, not trusted, timed out, or other."""
    import ssl

    cause = _cause(exc)
    where = f"the API server of context {context!r} ({host})"
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or "certificate verify failed"
        return ClusterUnreachable(
            f"{where} presented a certificate the kubeconfig does not trust ({why})",
            hint="the kubeconfig's certificate-authority is not the one that signed the server's "
                 "certificate: is it the right cluster, or a cluster created again since?",
            server=where, why=f"a certificate the kubeconfig does not trust: {why}")
    if isinstance(cause, ssl.SSLError):
        return ClusterUnreachable(f"{where}: the TLS handshake failed ({cause.reason or cause})",
                                  hint="is that address an API server?", server=where,
                                  why=f"TLS handshake failed: {cause.reason or cause}")
    if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(cause):
        return ClusterUnreachable(f"{where} does not answer: connection refused",
                                  hint="is it running? 'devmesh cluster status' shows each part",
                                  server=where, why="connection refused")
    if "timed out" in str(cause).lower():
        return ClusterUnreachable(f"{where} did not answer in time", hint="is it running, and reachable from here?",
                                  server=where, why="timed out")
    return ClusterUnreachable(f"cannot reach {where}: {cause}",
                              hint="is it running? 'devmesh cluster status' shows each part",
                              server=where, why=str(cause))


class KubeClient:
    """``ClusterClient`` over the kubernetes Python client, for one kubeconfig context."""

    def __init__(self, api: ApiClient, context: str) -> None:
        self.api = api
        self._context = context

    @property
    def context(self) -> str:
        return self._context

    # --- requests ------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, query: Sequence[tuple[str, str]] = (),
                 body: Any = None, content_type: str | None = None, stream: bool = False,
                 timeout: float | None = REQUEST_TIMEOUT) -> Any:
        """Send one request; the parsed JSON body (or the raw response when ``stream``)."""
        import urllib3.exceptions

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        request = self.api.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api.call_api(*request, _request_timeout=timeout)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise unreachable(self._context, self.api.configuration.host, exc) from None
        if not 200 <= response.status <= 299:
            data = response.read()  # type: ignore[no-untyped-call]
            message, reason = _status_message(data)
            cls = ApplyConflict if response.status == 409 and method == "PATCH" else ClusterError
            raise cls(f"{method} {path}: {response.status} {message or response.reason}",
                      status=response.status, reason=reason)
        if stream:
            return response.response
        data = response.read()  # type: ignore[no-untyped-call]
        return json.loads(data) if data else {}

    # --- the protocol --------------------------------------------------------------------

    def server_version(self) -> str:
        info = self._request("GET", "/version", timeout=10)
        return str(info.get("gitVersion", ""))

    def apply(self, obj: Obj, *, force: bool = True) -> Obj:
        res = resource(obj["apiVersion"], obj["kind"])
        meta = obj.get("metadata") or {}
        path = res.path(meta.get("namespace"), meta["name"])
        query = [("fieldManager", FIELD_MANAGER)] + ([("force", "true")] if force else [])
        stored: Obj = self._request("PATCH", path, query=query, body=obj,
                                    content_type=APPLY_CONTENT_TYPE)
        return stored

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        path = resource(api_version, kind).path(namespace, name)
        try:
            found: Obj = self._request("GET", path)
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    def list(self, api_version: str, kind: str, *, namespace: str | None = None,
             selector: str = "") -> list[Obj]:
        res = resource(api_version, kind)
        if res.namespaced and namespace is None:
            path = res.path("_").replace("/namespaces/_", "")  # every namespace
        else:
            path = res.path(namespace)
        body = self._request("GET", path, query=_selector_query(selector))
        items = []
        for item in body.get("items") or ():
            # List responses leave out each item's apiVersion and kind.
            items.append({"apiVersion": api_version, "kind": kind, **item})
        return items

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        path = resource(api_version, kind).path(namespace, name)
        try:
            self._request("DELETE", path, query=[("propagationPolicy", "Background")])
        except ClusterError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def pod_logs(self, namespace: str, pod: str, *, container: str, follow: bool = False,
                 tail: int | None = None, previous: bool = False,
                 timestamps: bool = True) -> Iterator[str]:
        query = [("container", container)]
        if follow:
            query.append(("follow", "true"))
        if tail is not None:
            query.append(("tailLines", str(tail)))
        if previous:
            query.append(("previous", "true"))
        if timestamps:
            query.append(("timestamps", "true"))
        path = resource("v1", "Pod").path(namespace, pod) + "/log"
        raw = self._request("GET", path, query=query, stream=True, timeout=None if follow else 60)
        partial = b""
        try:
            for chunk in raw.stream(4096, decode_content=True):
                partial += chunk
                *lines, partial = partial.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace").rstrip("\r")
            if partial:
                yield partial.decode(errors="replace").rstrip("\r")
        finally:
            raw.release_conn()

    def exec(self, namespace: str, pod: str, command: Sequence[str], *, container: str,
             stdin: bytes | None = None, timeout: float = 60.0) -> ExecResult:
        import time

        from kubernetes.client import CoreV1Api
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import stream

        try:
            ws = stream(
                CoreV1Api(self.api).connect_get_namespaced_pod_exec, pod, namespace,
                command=list(command), container=container, stdin=stdin is not None,
                stdout=True, stderr=True, tty=False, _preload_content=False, binary=True,
            )
        except ApiException as exc:
            # The websocket upgrade was refused: the status is only in the text
            # ("Handshake status 404 Not Found -+-+- headers -+-+- body"); 404: the pod is gone.
            text = str(exc.reason or exc)
            found = re.search(r"Handshake status (\d{3})", text)
            status = int(found.group(1)) if found else int(exc.status or 0)
            body = text.split(" -+-+- ")[-1] if " -+-+- " in text else ""
            message = _status_message(body.encode())[0] or text.split(" -+-+- ")[0]
            raise ClusterError(f"exec in {namespace}/{pod} ({container}): {message}",
                               status=status) from None
        out, err = bytearray(), bytearray()
        try:
            if stdin is not None:
                ws.write_stdin(stdin)
                # Only the v5 protocol can say "end of input"; on v4 the command must stop
                # by itself (tar does, at the end of the archive).
                ws.close_channel(0)
            deadline = time.monotonic() + timeout
            while ws.is_open():
                if time.monotonic() > deadline:
                    raise ClusterError(f"exec in {namespace}/{pod} ({container}) did not finish "
                                       f"within {timeout:g} s: {' '.join(command)}")
                ws.update(timeout=1)
                out += _as_bytes(ws.read_stdout(timeout=0) if ws.peek_stdout() else b"")
                err += _as_bytes(ws.read_stderr(timeout=0) if ws.peek_stderr() else b"")
            code = ws.returncode
        finally:
            ws.close()
        return ExecResult(int(code or 0), bytes(out), bytes(err))

    def rollout_status(self, namespace: str, name: str) -> Rollout:
        return rollout_from(self, namespace, name)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]


def _as_bytes(data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    return str(data or "").encode()


_CONTEXT_HINT = ("'devmesh cluster up' creates the kind cluster and its context; "
                 "'kubectl config get-contexts' lists the others")


def _kubeconfig_problem(files: str, context: str) -> str | None:
    """What keeps ``context`` from being read out of the kubeconfig files (``files`` is a
    ``KUBECONFIG`` value: paths joined by ``:``; missing ones are skipped, as kubectl does)."""
    import os

    import yaml

    paths = [p for p in files.split(os.pathsep) if p]
    found = [p for p in paths if os.path.isfile(p)]
    if not found:
        return f"no usable kube context {context!r}: the kubeconfig {' nor '.join(paths)} does not exist"
    names: list[str] = []
    for path in found:
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except (OSError, UnicodeDecodeError) as exc:
            return f"no usable kube context {context!r}: the kubeconfig {path} cannot be read ({exc})"
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else path
            return f"{where}: not a kubeconfig: {getattr(exc, 'problem', None) or exc}"
        if data is None:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("contexts") or [], list):
            return f"{path}: not a kubeconfig (no mapping with a list of contexts)"
        names += [str(c.get("name")) for c in data.get("contexts") or [] if isinstance(c, dict)]
    if context not in names:
        have = f"it has {', '.join(sorted(set(names)))}" if names else "it has none"
        return f"no kube context {context!r} in the kubeconfig {', '.join(found)} ({have})"
    return None


def open_client(context: str, *, kubeconfig: str | None = None) -> KubeClient:
    """A client for ``context`` in the kubeconfig (``KUBECONFIG``, else ~/.kube/config)."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    # KUBECONFIG is read now, not when the kubernetes package was imported (which is when its
    # own default is fixed): a long-lived process, or a test, sees the value of the moment.
    import os

    files = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    problem = _kubeconfig_problem(files, context)
    if problem:
        raise KubeconfigError(problem, hint=_CONTEXT_HINT)
    try:
        api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=files, context=context)
    except (ConfigException, OSError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise KubeconfigError(f"no usable kube context {context!r}: {exc}", hint=_CONTEXT_HINT) from None
    return KubeClient(api, context)
