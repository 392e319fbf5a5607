"""A faithful in-memory fake of devmesh's ``ClusterClient`` (Tilt's FakeK8sClient is the model).

What it keeps faithful, because devmesh's behaviour depends on it:

- objects are stored as the API stores them: ``metadata.generation`` moves only when the
  desired state (not metadata) changes, ``resourceVersion`` on every write that changes
  something (a write that changes nothing stores nothing), namespaced objects need their
  namespace, deleting a namespace deletes what is in it and leaves it ``Terminating`` (refusing
  new content) for a while, deleting a Deployment its pods;
- refusals worded as ``KubeClient`` words kube-apiserver's (method, path, status, message),
  including the schema checks devmesh's computed values meet (a replica count, route weights);
- label selectors (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``);
- server-side apply: each field manager owns the fields it applied; applying a different value
  to a field another manager owns is a conflict (409) unless forced, and forcing takes the
  field over; fields a manager stops applying are removed unless someone else owns them.
  Lists are owned as a whole (the real API merges some lists by key, so it is stricter here);
- a Deployment controller: each new generation replaces the Deployment's pod, whose fate
  (ready, pending, ImagePullBackOff, CrashLoopBackOff, Unschedulable) tests choose, and the
  Deployment's status follows;
- pod logs and exec streams served from fixtures, with the API's errors for a missing pod
  or container.

With ``store`` the state lives in a JSON file, so recording fake executables (``istioctl``)
running as other processes change the same "cluster", as the real tools would.
"""

from __future__ import annotations

import builtins
import copy
import fcntl
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devmesh.plan.k8s import FIELD_MANAGER
from devmesh.runtime.kind.client import (
    ApplyConflict,
    ClusterError,
    ClusterUnreachable,
    ExecResult,
    Obj,
    Resource,
    resource,
    rollout_from,
)
from devmesh.runtime.kind.rollout import Rollout

Path_ = tuple[str, ...]
FATES = ("ready", "pending", "image-pull", "crash", "unschedulable")
_NOT_OWNED = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
_SERVER_META = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
                "deletionTimestamp")


# --- label selectors ------------------------------------------------------------------------


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


_SET_RE = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$")


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Whether ``labels`` satisfy a Kubernetes label selector string."""
    for req in _split_selector(selector):
        if m := _SET_RE.match(req):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            inside = key in labels and labels[key] in values
            if inside != (op == "in"):
                return False
            continue
        if "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in req:
            key, value = (s.strip() for s in req.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif req.startswith("!"):
            if req[1:].strip() in labels:
                return False
        elif req not in labels:
            return False
    return True


# --- field paths ----------------------------------------------------------------------------


def _leaves(obj: Any, prefix: Path_ = ()) -> dict[Path_, Any]:
    """Every owned leaf: scalars, whole lists, empty maps."""
    if isinstance(obj, dict) and obj:
        out: dict[Path_, Any] = {}
        for key, value in obj.items():
            out.update(_leaves(value, (*prefix, str(key))))
        return out
    return {prefix: obj}


def _owned_leaves(obj: Obj) -> dict[Path_, Any]:
    leaves = _leaves({k: v for k, v in obj.items() if k != "status"})
    return {p: v for p, v in leaves.items()
            if p not in _NOT_OWNED and not (len(p) >= 2 and p[0] == "metadata" and p[1] in _SERVER_META)}


_MISSING = object()


def _get(obj: Any, path: Path_) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return _MISSING
        obj = obj[key]
    return obj


def _set(obj: Obj, path: Path_, value: Any) -> None:
    for key in path[:-1]:
        if not isinstance(obj.get(key), dict):
            obj[key] = {}
        obj = obj[key]
    obj[path[-1]] = copy.deepcopy(value)


def _delete(obj: Obj, path: Path_) -> None:
    chain = [obj]
    for key in path[:-1]:
        nxt = chain[-1].get(key)
        if not isinstance(nxt, dict):
            return
        chain.append(nxt)
    chain[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):  # prune maps the removal left empty
        if chain[depth]:
            break
        chain[depth - 1].pop(path[depth - 1], None)


def _fields_v1(paths: set[Path_]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in sorted(paths):
        node = tree
        for key in path:
            node = node.setdefault(f"f:{key}", {})
    return tree


def _conflict_message(conflicts: list[tuple[str, Any]], api_version: str) -> str:
    """kube-apiserver's own wording (checked against v1.34 in tests/apiserver): one conflict
    on one line, several grouped by manager, managers and paths in order."""
    count = len(conflicts)
    if count == 1:
        manager, path = conflicts[0]
        return f'Apply failed with 1 conflict: conflict with "{manager}" using {api_version}: {_path_text(path)}'
    lines = []
    for manager in sorted({m for m, _ in conflicts}):
        lines.append(f'conflicts with "{manager}" using {api_version}:')
        lines += [f"- {text}" for text in sorted(_path_text(p) for m, p in conflicts if m == manager)]
    return f"Apply failed with {count} conflicts: " + "\n".join(lines)


def _path_text(path: Path_) -> str:
    return "." + ".".join(path)


# --- fixtures -------------------------------------------------------------------------------


@dataclass
class LogFixture:
    selector: str
    container: str
    previous: bool
    lines: list[tuple[str, str]] = field(default_factory=list)  # (timestamp, text)


@dataclass(frozen=True)
class ExecCall:
    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: bytes | None


ExecHandler = Callable[[ExecCall], ExecResult]
FateRule = Callable[[Obj], str]


def _validate(res: Resource, obj: Obj, namespace: str | None, name: str) -> None:
    """The checks of the API server's schemas that devmesh's computed values meet: a replica
    count, and the weights of Istio routes (worded as kube-apiserver v1.34 words them). The
    fake checks no other field: what devmesh renders is applied to the real API server, with
    Istio's real CRD schemas, in tests/apiserver/."""
    spec = obj.get("spec") or {}
    replicas = spec.get("replicas") if res.kind == "Deployment" else None
    if isinstance(replicas, int) and replicas < 0:
        raise ClusterError(f'Deployment.apps "{name}" is invalid: spec.replicas: Invalid value: {replicas}: '
                           "must be greater than or equal to 0", status=422, reason="Invalid")
    if res.kind != "VirtualService":
        return
    for i, http in enumerate(spec.get("http") or ()):
        for j, route in enumerate(http.get("route") or ()):
            weight = route.get("weight", 0)
            where = f"spec.http[{i}].route[{j}].weight"
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                # server-side apply cannot type the patch at all: a 500, without a reason
                raise ClusterError(f"failed to create typed patch object ({namespace}/{name}; {res.api_version}, "
                                   f"Kind={res.kind}): .{where}: expected numeric (int or float), got "
                                   f"{'bool' if isinstance(weight, bool) else 'string'}", status=500)
            if isinstance(weight, float):
                raise ClusterError(f'{res.kind}.{res.api_version.split("/")[0]} "{name}" is invalid: '
                                   f'[{where}: Invalid value: "number": {where} in body must be of type '
                                   'integer: "number", <nil>: Invalid value: null: some validation rules were '
                                   "not checked because the object was invalid; correct the existing errors to "
                                   "complete validation]", status=422, reason="Invalid")


class FakeCluster:
    """``ClusterClient`` over an in-memory (or JSON-file) store."""

    def __init__(self, context: str = "kind-devmesh", *, store: Path | None = None,
                 version: str = "v1.33.1", istio: bool = True) -> None:
        self._context = context
        self.store = store
        self.version = version
        self.reachable = True
        self.fate: FateRule = lambda pod: "ready"
        # Istio's injection webhook: pods in a namespace labelled istio-injection=enabled get
        # an istio-proxy container (off unless a test wants the sidecar).
        self.sidecars = False
        self.exit_codes: dict[str, int] = {}
        self.log_fixtures: list[LogFixture] = []
        self.exec_calls: list[ExecCall] = []
        self.exec_handler: ExecHandler = lambda call: ExecResult(0, b"", b"")
        self.calls: list[tuple[str, ...]] = []
        self.namespace_reads = 1
        self._lock = threading.RLock()
        self._clock = 0
        self._state: dict[str, Any] = {"objects": {}, "owners": {}, "seq": 0}
        if store is not None and store.exists():
            self._state = json.loads(store.read_text())
        elif store is None and istio:
            # a cluster Istio runs in (a stored one gets it from the fake istioctl install)
            self.write({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "istio-system"}},
                       manager="istioctl", force=True, operation="Apply")

    # --- persistence ---------------------------------------------------------------------

    @contextmanager
    def _session(self, write: bool) -> Iterator[None]:
        with self._lock:
            if self.store is None:
                yield
                return
            self.store.parent.mkdir(parents=True, exist_ok=True)
            with open(self.store.with_suffix(".lock"), "a+") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    if self.store.exists():
                        self._state = json.loads(self.store.read_text())
                    yield
                    if write:
                        tmp = self.store.with_suffix(".tmp")
                        tmp.write_text(json.dumps(self._state, indent=1, sort_keys=True))
                        tmp.replace(self.store)
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    @staticmethod
    def _key(api_version: str, kind: str, namespace: str | None, name: str) -> str:
        return "|".join((api_version, kind, namespace or "", name))

    def _check_reachable(self) -> None:
        if not self.reachable:
            raise ClusterUnreachable(f"the API server of context {self._context!r} does not answer: "
                                     "connection refused", server=f"the API server of context {self._context!r}",
                                     why="connection refused")

    def _next(self) -> int:
        self._state["seq"] += 1
        return int(self._state["seq"])

    # --- the ClusterClient protocol --------------------------------------------------------

    @property
    def context(self) -> str:
        return self._context

    def server_version(self) -> str:
        self._check_reachable()
        return self.version

    def apply(self, obj: Obj, *, force: bool = True) -> Obj:
        return self.write(obj, manager=FIELD_MANAGER, force=force, operation="Apply")

    @staticmethod
    @contextmanager
    def _as_request(method: str, res: Resource, namespace: str | None, name: str) -> Iterator[None]:
        """Refusals worded as ``KubeClient`` words the API server's: method, path, status, message."""
        try:
            yield
        except ClusterUnreachable:
            raise
        except ClusterError as exc:
            raise type(exc)(f"{method} {res.path(namespace, name)}: {exc.status} {exc}", status=exc.status,
                            reason=exc.reason, hint=exc.hint) from None

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        self._check_reachable()
        res = resource(api_version, kind)
        key = self._key(api_version, kind, namespace if res.namespaced else None, name)
        with self._session(write=kind == "Namespace"):
            self.calls.append(("get", kind, name))
            if kind == "Namespace":
                self._namespace_controller([key])
            found = self._state["objects"].get(key)
            return copy.deepcopy(found) if found is not None else None

    def list(self, api_version: str, kind: str, *, namespace: str | None = None,
             selector: str = "") -> list[Obj]:
        self._check_reachable()
        resource(api_version, kind)
        with self._session(write=kind == "Namespace"):
            self.calls.append(("list", kind, selector))
            if kind == "Namespace":
                self._namespace_controller([k for k in self._state["objects"] if k.startswith("v1|Namespace|")])
            out = []
            for key, obj in sorted(self._state["objects"].items()):
                v, k, ns, _ = key.split("|")
                if (v, k) != (api_version, kind) or (namespace is not None and ns != namespace):
                    continue
                if selector and not selector_matches(selector, obj["metadata"].get("labels") or {}):
                    continue
                out.append(copy.deepcopy(obj))
            return out

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> bool:
        self._check_reachable()
        res = resource(api_version, kind)
        with self._session(write=True):
            self.calls.append(("delete", kind, name))
            key = self._key(api_version, kind, namespace if res.namespaced else None, name)
            if key not in self._state["objects"]:
                return False
            if kind == "Namespace":
                self._terminate(key)
            else:
                self._remove(key)
            return True

    def _terminate(self, key: str) -> None:
        """Delete a namespace as the API does: its contents go, and the namespace itself stays
        ``Terminating`` until the namespace controller is done — here, until it has been read
        ``namespace_reads`` times (kube-controller-manager takes a few seconds)."""
        terminating = self._state.setdefault("terminating", {})
        if key in terminating:
            return
        name = key.split("|")[3]
        for other in [k for k in self._state["objects"] if k.split("|")[2] == name]:
            if other in self._state["objects"]:  # a Deployment may have taken its pods along
                self._remove(other)
        ns = self._state["objects"][key]
        ns["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
        ns["status"] = {"phase": "Terminating"}
        ns["metadata"]["resourceVersion"] = str(self._next())
        terminating[key] = self.namespace_reads

    def _namespace_controller(self, read: builtins.list[str]) -> None:
        """Finish the namespaces whose reads are used up; count down those in ``read``."""
        terminating = self._state.get("terminating") or {}
        for key in [k for k, left in terminating.items() if left <= 0]:
            del terminating[key]
            self._remove(key)
        for key in read:
            if key in terminating:
                terminating[key] -= 1

    def pod_logs(self, namespace: str, pod: str, *, container: str, follow: bool = False,
                 tail: int | None = None, previous: bool = False,
                 timestamps: bool = True) -> Iterator[str]:
        self._check_reachable()
        found = self._pod(namespace, pod, container)
        labels = found["metadata"].get("labels") or {}
        fixtures = [f for f in self.log_fixtures
                    if f.container == container and f.previous == previous and selector_matches(f.selector, labels)]
        lines = sorted((line for f in fixtures for line in f.lines), key=lambda line: line[0])
        if tail is not None:
            lines = lines[-tail:] if tail else []
        sent = {id(f): len(f.lines) for f in fixtures}
        for stamp, text in lines:
            yield f"{stamp} {text}" if timestamps else text
        while follow:
            time.sleep(0.02)
            if self.get("v1", "Pod", pod, namespace) is None:
                return
            for f in fixtures:
                for stamp, text in f.lines[sent[id(f)]:]:
                    yield f"{stamp} {text}" if timestamps else text
                sent[id(f)] = len(f.lines)

    def exec(self, namespace: str, pod: str, command: Sequence[str], *, container: str,
             stdin: bytes | None = None, timeout: float = 60.0) -> ExecResult:
        self._check_reachable()
        self._pod(namespace, pod, container)
        call = ExecCall(namespace, pod, container, tuple(command), stdin)
        self.exec_calls.append(call)
        return self.exec_handler(call)

    def rollout_status(self, namespace: str, name: str) -> Rollout:
        return rollout_from(self, namespace, name)

    def close(self) -> None:
        pass

    # --- fixtures and other managers ---------------------------------------------------

    def add_logs(self, selector: str, container: str, *lines: str, previous: bool = False) -> None:
        """Log lines for every pod matching ``selector`` (also pods created later)."""
        fixture = next((f for f in self.log_fixtures
                        if (f.selector, f.container, f.previous) == (selector, container, previous)), None)
        if fixture is None:
            fixture = LogFixture(selector, container, previous)
            self.log_fixtures.append(fixture)
        for text in lines:
            self._clock += 1
            stamp = f"2025-01-01T00:{self._clock // 60:02d}:{self._clock % 60:02d}.000000000Z"
            fixture.lines.append((stamp, text))

    def update(self, obj: Obj, *, manager: str) -> Obj:
        """A write by another client (``kubectl edit``, a controller, istioctl): it owns what it changes."""
        return self.write(obj, manager=manager, force=True, operation="Update")

    def set_deletion(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> None:
        """Mark an object as terminating (as a namespace with finalizers stays for a while)."""
        with self._session(write=True):
            key = self._key(api_version, kind, namespace, name)
            self._state["objects"][key]["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"

    # --- writes --------------------------------------------------------------------------

    def write(self, obj: Obj, *, manager: str, force: bool, operation: str) -> Obj:
        self._check_reachable()
        res = resource(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise ClusterError(f"{res.kind}: metadata.name is required", status=422, reason="Invalid")
        namespace = meta.get("namespace") if res.namespaced else None
        if res.namespaced and not namespace:
            raise ClusterError(f"{res.kind} {name}: a namespace is required", status=400, reason="BadRequest")
        with self._as_request("PATCH", res, namespace, name):
            return self._write(res, obj, namespace, name, manager=manager, force=force, operation=operation)

    def _write(self, res: Resource, obj: Obj, namespace: str | None, name: str, *, manager: str, force: bool,
               operation: str) -> Obj:
        _validate(res, obj, namespace, name)
        with self._session(write=True):
            self.calls.append((operation.lower(), res.kind, name))
            if namespace is not None:
                ns = self._state["objects"].get(self._key("v1", "Namespace", None, namespace))
                if ns is None:
                    raise ClusterError(f'namespaces "{namespace}" not found', status=404, reason="NotFound")
                if ns["metadata"].get("deletionTimestamp"):
                    group = res.api_version.rpartition("/")[0]
                    raise ClusterError(f'{res.plural}{"." + group if group else ""} "{name}" is forbidden: '
                                       f"unable to create new content in namespace {namespace} because "
                                       "it is being terminated", status=403, reason="Forbidden")
            key = self._key(res.api_version, res.kind, namespace, name)
            current = self._state["objects"].get(key)
            owners: dict[str, list[list[str]]] = self._state["owners"].setdefault(key, {})
            owned = {m: {tuple(p) for p in paths} for m, paths in owners.items()}
            leaves = _owned_leaves(obj)
            if operation == "Apply":
                conflicts = [
                    (other, path) for path, value in leaves.items()
                    for other, paths in owned.items()
                    if other != manager and path in paths and current is not None
                    and _get(current, path) is not _MISSING and _get(current, path) != value
                ]
                if conflicts and not force:
                    raise ApplyConflict(_conflict_message(conflicts, res.api_version), status=409,
                                        reason="Conflict")
                stale = owned.get(manager, set()) - set(leaves)
            else:  # an update owns only what it changes
                leaves = {p: v for p, v in leaves.items()
                          if current is None or _get(current, p) != v}
                stale = set()
            new: Obj = copy.deepcopy(current) if current is not None else {
                "apiVersion": res.api_version, "kind": res.kind,
                "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
            }
            for path in stale:
                if not any(path in paths for m, paths in owned.items() if m != manager):
                    _delete(new, path)
            for path, value in leaves.items():
                _set(new, path, value)
                for other in owned:
                    if other != manager:
                        owned[other].discard(path)
            owned[manager] = (owned.get(manager, set()) | set(leaves)) if operation != "Apply" else set(leaves)
            self._state["owners"][key] = {m: sorted(list(p) for p in paths) for m, paths in owned.items() if paths}
            # generation counts changes of the desired state (not of metadata), as the API's does
            changed = current is None or self._desired(current) != self._desired(new)
            previous = {m["manager"]: m["operation"] for m in (current or {}).get("metadata", {}).get("managedFields") or ()}
            managed = [
                {"manager": m, "operation": operation if m == manager else previous.get(m, "Apply"),
                 "apiVersion": res.api_version, "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(paths)}
                for m, paths in sorted(owned.items()) if paths
            ]
            new_meta: Obj = new["metadata"]
            new_meta["managedFields"] = managed
            if current is not None and new == current:
                # A write that changes nothing stores nothing: the resourceVersion stays.
                return copy.deepcopy(current)
            if current is None:
                new_meta["uid"] = hashlib.sha1(f"{key}{self._next()}".encode()).hexdigest()
                new_meta["creationTimestamp"] = "2025-01-01T00:00:00Z"
                new_meta["generation"] = 1
            elif changed:
                new_meta["generation"] = int(new_meta.get("generation", 1)) + 1
            new_meta["resourceVersion"] = str(self._next())
            self._state["objects"][key] = new
            if res.kind == "Deployment" and changed:
                self._roll_out(key)
            return copy.deepcopy(self._state["objects"][key])

    @staticmethod
    def _desired(obj: Obj) -> Any:
        return {k: v for k, v in obj.items() if k not in ("metadata", "status")}

    def _remove(self, key: str) -> None:
        obj = self._state["objects"].pop(key)
        self._state["owners"].pop(key, None)
        v, kind, ns, name = key.split("|")
        if kind == "Namespace":
            for other in [k for k in self._state["objects"] if k.split("|")[2] == name]:
                if other in self._state["objects"]:  # a Deployment may have taken its pods along
                    self._remove(other)
        if kind == "Deployment":
            for pod in self._pods_of(obj):
                self._state["objects"].pop(pod, None)

    def _pods_of(self, deployment: Obj) -> builtins.list[str]:
        ns = deployment["metadata"]["namespace"]
        match = deployment["spec"].get("selector", {}).get("matchLabels") or {}
        sel = ",".join(f"{k}={v}" for k, v in match.items())
        return [k for k, o in self._state["objects"].items()
                if k.startswith(f"v1|Pod|{ns}|") and selector_matches(sel, o["metadata"].get("labels") or {})]

    # --- the deployment controller -------------------------------------------------------

    def _roll_out(self, key: str) -> None:
        deployment = self._state["objects"][key]
        for old in self._pods_of(deployment):
            del self._state["objects"][old]
        template = deployment["spec"]["template"]
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        ns, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        wanted = deployment["spec"].get("replicas", 1)
        ready = 0
        for _ in range(wanted):
            pod_name = f"{name}-{digest}-{self._next():05x}"
            pod: Obj = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": ns,
                             "labels": {**(template.get("metadata", {}).get("labels") or {}),
                                        "pod-template-hash": digest},
                             "annotations": dict(template.get("metadata", {}).get("annotations") or {}),
                             "ownerReferences": [{"kind": "ReplicaSet", "name": f"{name}-{digest}"}]},
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            if self.sidecars and self._injected(ns):
                pod["spec"]["containers"].append({"name": "istio-proxy", "image": "istio/proxyv2"})
            fate = self.fate(pod)
            if fate not in FATES:
                raise ValueError(f"unknown fate {fate!r}; one of {FATES}")
            pod["status"] = self._pod_status(pod, fate)
            self._state["objects"][self._key("v1", "Pod", ns, pod_name)] = pod
            ready += fate == "ready"
        deployment["status"] = {
            "observedGeneration": deployment["metadata"]["generation"],
            "replicas": wanted, "updatedReplicas": wanted, "readyReplicas": ready,
            "availableReplicas": ready,
            **({} if ready == wanted else {"unavailableReplicas": wanted - ready}),
        }

    def _injected(self, namespace: str) -> bool:
        found = self.get("v1", "Namespace", namespace) or {}
        return bool((found.get("metadata", {}).get("labels") or {}).get("istio-injection") == "enabled")

    def _pod_status(self, pod: Obj, fate: str) -> Obj:
        containers = pod["spec"].get("containers") or []
        if fate == "unschedulable":
            return {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                 "message": "0/1 nodes are available: 1 Insufficient memory."}]}
        statuses = []
        for c in containers:
            cs: Obj = {"name": c["name"], "image": c.get("image", ""), "restartCount": 0,
                       "ready": fate == "ready"}
            if fate == "ready":
                cs["state"] = {"running": {"startedAt": "2025-01-01T00:00:00Z"}}
            elif fate == "pending":
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
            elif fate == "image-pull":
                cs["state"] = {"waiting": {"reason": "ImagePullBackOff",
                                           "message": f'Back-off pulling image "{c.get("image", "")}"'}}
            else:
                code = self.exit_codes.get(c["name"], 1)
                cs["restartCount"] = 3
                cs["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                           "message": f"back-off 40s restarting failed container={c['name']}"}}
                cs["lastState"] = {"terminated": {"exitCode": code, "reason": "Error"}}
            statuses.append(cs)
        return {"phase": "Running" if fate in ("ready", "crash") else "Pending",
                "conditions": [{"type": "PodScheduled", "status": "True"},
                               {"type": "Ready", "status": "True" if fate == "ready" else "False"}],
                "containerStatuses": statuses}

    def _pod(self, namespace: str, pod: str, container: str) -> Obj:
        found = self.get("v1", "Pod", pod, namespace)
        if found is None:
            raise ClusterError(f'pods "{pod}" not found', status=404, reason="NotFound")
        names = [c["name"] for c in found["spec"].get("containers") or ()]
        if container not in names:
            raise ClusterError(f"container {container} is not valid for pod {pod}", status=400,
                               reason="BadRequest")
        return found
