"""The files one Envoy reads, as YAML it reads back exactly, and how they are written into place:
each changed file renamed over the old one, in the order that keeps every route's cluster
known (see ``write_atomically``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

BOOTSTRAP_FILE = "bootstrap.yaml"
CDS_FILE = "cds.yaml"
LDS_FILE = "lds.yaml"

Doc = dict[str, Any]


@dataclass(frozen=True)
class EnvoyFiles:
    """The content of every file Envoy reads; ``rds`` maps a route table's name to its file."""

    bootstrap: Doc
    lds: Doc
    cds: Doc
    rds: Mapping[str, Doc]

    def texts(self) -> dict[str, str]:
        """File name → YAML text, in the order they must be written (clusters first)."""
        out = {BOOTSTRAP_FILE: to_yaml(self.bootstrap), CDS_FILE: to_yaml(self.cds)}
        out.update((rds_file(name), to_yaml(doc)) for name, doc in self.rds.items())
        out[LDS_FILE] = to_yaml(self.lds)
        return out


def rds_file(route_config: str) -> str:
    return f"rds-{route_config}.yaml"


# Envoy's YAML reader (yaml-cpp) takes y/n/yes/no/on/off/true/false as booleans and anything
# number-like as a number, also where a string is expected; PyYAML leaves some of those (y, n,
# 1e3, …) unquoted. Quote every string value that is not plainly a word.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_./-]*")
_AMBIGUOUS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "inf", "nan",
              "infinity", "nil"}


# libyaml's emitter when PyYAML has it (about thirty times faster); same output.
_BaseDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BaseDumper):  # type: ignore[valid-type,misc]
    pass


def _represent_str(dumper: Any, value: str) -> yaml.Node:
    plain = _PLAIN.fullmatch(value) is not None and value.lower() not in _AMBIGUOUS
    node: yaml.Node = dumper.represent_scalar("tag:yaml.org,2002:str", value,
                                              style=None if plain else '"')
    return node


_Dumper.add_representer(str, _represent_str)


def to_yaml(doc: Any) -> str:
    """YAML that Envoy reads back exactly (strings that could be read as anything else quoted)."""
    text: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                          allow_unicode=True)
    return text


def cluster_names(files: EnvoyFiles) -> frozenset[str]:
    """The names of the clusters in ``files`` (what ``await_clusters`` should wait for)."""
    return frozenset(c["name"] for c in files.cds["resources"])


def write_atomically(directory: Path, files: EnvoyFiles, *,
                     await_clusters: Callable[[frozenset[str]], None] | None = None) -> bool:
    """Write the files Envoy watches; True when any file changed.

    Unchanged files are not touched (Envoy sees no update at all). A changed file is written to
    a temporary file in ``directory`` and renamed over the old one — Envoy only notices renames
    — in dependency order: bootstrap, clusters, route tables, listeners. Clusters that go away
    are kept in that first ``cds.yaml`` and only removed by a second one written last, so no
    route ever names a cluster Envoy has dropped. Files are world-readable: Envoy may run as
    another user inside its container.

    Envoy warms a new cluster (first DNS answer, first health check) before using it, and a
    route to a cluster that is still warming answers 503 for those few milliseconds. When the
    clusters changed and ``await_clusters`` is given, it is called with the new cluster names
    after ``cds.yaml`` is in place and before any route or listener file is written: the
    runtime passes a function that polls the admin ``/clusters`` endpoint until every name is
    listed (a warming cluster is not) — see ``parse_cluster_health``. A change of
    ``bootstrap.yaml`` only takes effect when Envoy restarts.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    texts = files.texts()
    leaving = _clusters_leaving(directory / CDS_FILE, cluster_names(files))
    changed = False
    for name, text in texts.items():
        if name == CDS_FILE and leaving:
            text = to_yaml({"resources": [*files.cds["resources"], *leaving]})
        if _replace_if_changed(directory, name, text.encode("utf-8")):
            changed = True
            if name == CDS_FILE and await_clusters is not None:
                await_clusters(cluster_names(files))
    if leaving:
        _replace_if_changed(directory, CDS_FILE, texts[CDS_FILE].encode("utf-8"))
    return changed


def _clusters_leaving(cds_path: Path, staying: frozenset[str]) -> list[Doc]:
    """The clusters in the current ``cds.yaml`` that the new one drops (as written there)."""
    try:
        current = yaml.safe_load(cds_path.read_text(encoding="utf-8"))
        resources = list(current["resources"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []  # no usable file: nothing Envoy could still route to from it
    return [c for c in resources if isinstance(c, dict) and c.get("name") not in staying]


def _replace_if_changed(directory: Path, name: str, data: bytes) -> bool:
    path = directory / name
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, 0o644)  # the umask may have narrowed the mode given to open
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return True
