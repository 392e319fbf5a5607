"""``KubeClient``: the ``ClusterClient`` protocol over the Kubernetes API's HTTP interface.

It uses the kubernetes Python client's generic request path (no per-kind generated methods, so
Istio's objects and core objects travel the same way): server-side apply (field manager
``devmesh``), get, list and delete by label selector, pod log streams, exec with stdin (over
the websocket), rollout status.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import urllib3.exceptions

from devmesh.plan.k8s import FIELD_MANAGER
from devmesh.runtime.kind.errors import ApplyConflict, ClusterError, unreachable
from devmesh.runtime.kind.protocol import ExecResult, Obj, rollout_from
from devmesh.runtime.kind.resources import resource
from devmesh.runtime.kind.rollout import Rollout

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
REQUEST_TIMEOUT = 30.0


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
        # kubernetes is imported on first use: importing it takes about 0.8 s, and every
        # devmesh command that runs environments imports this module.
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
