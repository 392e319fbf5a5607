"""The fields devmesh renders into the manifest repo, and how it tells later a person's edit of
them from a change of devmesh.yaml or a preset.

Every object devmesh renders carries the annotation ``devmesh.dev/rendered``: a fingerprint of
what devmesh wrote in it. A traffic file's objects are wholly devmesh's, so the fingerprint
covers the whole object (but the annotation itself); a base object is the team's to edit, so
it covers only the fields devmesh renders there (the service's container image placeholder,
ports and environment; the Service's ports). Reading an object back:

- its fields match the fingerprint: devmesh wrote them, and they are ``stale`` where they
  differ from what devmesh.yaml and the presets say now (``manifests sync`` rewrites them);
- they do not: a person ``edited`` them (``manifests sync`` reports each and rewrites them
  only with ``--force``);
- no fingerprint (a file from before devmesh wrote them): what matches the render is
  devmesh's; what differs is reported as edited, since nothing says what devmesh wrote.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

RENDERED = "devmesh.dev/rendered"


def fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def without_stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` without the fingerprint annotation (and without ``annotations`` left empty)."""
    out = dict(obj)
    metadata = dict(out.get("metadata") or {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(RENDERED, None)
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    out["metadata"] = metadata
    return out


def recorded(obj: dict[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(RENDERED)
    return value if isinstance(value, str) else None


def _stamped(obj: dict[str, Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    metadata = out.setdefault("metadata", {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), RENDERED: fingerprint(value)}
    return out


def stamp_whole(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with the fingerprint of all of it (a traffic file's objects)."""
    return _stamped(obj, without_stamp(obj))


# --- the fields devmesh renders in a base object ---------------------------------------------


def _container(obj: dict[str, Any], service: str) -> dict[str, Any] | None:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers")
    if not isinstance(containers, list):
        return None
    return next((c for c in containers if isinstance(c, dict) and c.get("name") == service), None)


def base_fields(obj: dict[str, Any], service: str) -> dict[str, Any]:
    """field path → value of the fields devmesh renders in a base object (absent: None)."""
    kind = obj.get("kind")
    if kind == "Deployment":
        container = _container(obj, service) or {}
        where = f"spec.template.spec.containers[{service}]"
        return {f"{where}.image": container.get("image"), f"{where}.ports": container.get("ports"),
                f"{where}.env": container.get("env")}
    if kind == "Service":
        return {"spec.ports": (obj.get("spec") or {}).get("ports")}
    return {}


def set_base_fields(obj: Any, service: str, values: dict[str, Any]) -> None:
    """Set the fields ``base_fields`` names in ``obj`` (a round-trip mapping: its other keys,
    order and comments stay), a None value removing the field."""
    kind = obj.get("kind")
    if kind == "Deployment":
        target = _container(obj, service)
        if target is None:
            raise ValueError(f"no container named {service!r}")
        prefix = f"spec.template.spec.containers[{service}]."
    elif kind == "Service":
        target = obj["spec"]
        prefix = "spec."
    else:
        return
    for path, value in values.items():
        key = path.removeprefix(prefix)
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def stamp_base(obj: dict[str, Any], service: str) -> dict[str, Any]:
    """``obj`` with the fingerprint of the fields devmesh renders in it (a base object)."""
    return _stamped(obj, base_fields(obj, service))


# --- reading back ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One field that is not what devmesh renders now: what it is, and what devmesh.yaml and
    the presets say."""

    field: str
    found: Any
    wanted: Any


@dataclass(frozen=True)
class Verdict:
    state: Literal["same", "stale", "edited"]
    differences: tuple[Difference, ...] = ()


def differences(found: Any, wanted: Any, path: str = "") -> list[Difference]:
    """Where ``found`` differs from ``wanted``, leaf by leaf (lists of other lengths whole)."""
    if isinstance(found, dict) and isinstance(wanted, dict):
        out: list[Difference] = []
        for key in sorted(set(found) | set(wanted), key=str):
            out += differences(found.get(key), wanted.get(key), f"{path}.{key}")
        return out
    if isinstance(found, list) and isinstance(wanted, list) and len(found) == len(wanted):
        out = []
        for i, (a, b) in enumerate(zip(found, wanted)):
            out += differences(a, b, f"{path}[{i}]")
        return out
    return [] if found == wanted else [Difference(path.lstrip("."), found, wanted)]


def judge(found: dict[str, Any], wanted: dict[str, Any], found_value: Any, wanted_value: Any) -> Verdict:
    """How ``found`` (an object read from the repo, whose devmesh fields are ``found_value``)
    stands against ``wanted`` (the render now, whose fields are ``wanted_value``)."""
    diffs = tuple(differences(found_value, wanted_value))
    mark = recorded(found)
    if mark is not None and mark == fingerprint(found_value):
        return Verdict("stale", diffs) if diffs else Verdict("same")
    if not diffs:
        return Verdict("same")  # edited back to exactly what devmesh renders, or no record yet
    return Verdict("edited", diffs)


def judge_whole(found: dict[str, Any], wanted: dict[str, Any]) -> Verdict:
    return judge(found, wanted, without_stamp(found), without_stamp(wanted))


def judge_base(found: dict[str, Any], wanted: dict[str, Any], service: str) -> Verdict:
    return judge(found, wanted, base_fields(found, service), base_fields(wanted, service))


def show(value: Any) -> str:
    """A value as a message shows it: JSON, short."""
    text = "no such field" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
