"""Generated devmesh.yaml files, realistic in shape and hostile in their values, and raw bytes:
loading one either succeeds or raises devmesh's own error; a ConfigError about a value in the
file names its line."""

from __future__ import annotations

import shutil
import string
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devmesh.config import ConfigErrors, load_project
from devmesh.errors import ConfigError, DevmeshError

BUDGET = settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# Values a hostile file might hold, mixed with plausible ones.
hostile_text = st.one_of(
    st.sampled_from(["", " ", "api\n", "shop\n", "A=B", "\x00", "../x", "/etc", "~", "*",
                     "DEVMESH_ENV", "99999999999999999999h", "1e999", "nan", "x" * 300,
                     "caf\u00e9", "\u2028", "HUP\n", "SIGFOO", "localhost\n", "${port}"]),
    st.text(alphabet=string.printable + "\u00e9\u2028\x00", max_size=20),
)
hostile_number = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 65536, 2**31, 10**23]),
)
scalar = st.one_of(hostile_text, hostile_number, st.booleans(), st.none())
anything = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)), max_leaves=8)
name = st.one_of(st.sampled_from(["api", "web", "stock"]), hostile_text)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, anything)


service = st.fixed_dictionaries({}, optional={
    "context": _maybe(st.sampled_from(["services/api", "services/web", ".", "services/api/Dockerfile"])),
    "dockerfile": _maybe(st.just("Dockerfile")),
    "port": _maybe(hostile_number),
    "entry": _maybe(st.booleans()),
    "preset": _maybe(st.sampled_from(["python-web", "node-web", "container"])),
    "values": st.dictionaries(st.sampled_from(["port", "timeout", "retries", "workdir"]), scalar,
                              max_size=3),
    "env": st.dictionaries(hostile_text, scalar, max_size=3),
    "build_args": st.dictionaries(hostile_text, scalar, max_size=2),
    "sync": st.lists(st.fixed_dictionaries({"src": _maybe(st.just(".")),
                                            "dest": _maybe(st.just("/app"))}), max_size=2),
    "rebuild_on": _maybe(st.lists(hostile_text, max_size=2)),
    "reload": _maybe(st.one_of(st.sampled_from(["restart", "none"]),
                               st.fixed_dictionaries({"signal": hostile_text}),
                               st.fixed_dictionaries({"command": hostile_text}))),
    "resilience": _maybe(st.fixed_dictionaries({}, optional={
        "timeout": _maybe(hostile_text),
        "retries": _maybe(st.fixed_dictionaries({}, optional={"attempts": hostile_number})),
        "circuit_breaker": _maybe(st.fixed_dictionaries({}, optional={
            "max_connections": hostile_number})),
    })),
})
project = st.fixed_dictionaries({}, optional={
    "app": _maybe(st.sampled_from(["shop"])),
    "baseline": _maybe(hostile_text),
    "runtime": _maybe(st.sampled_from(["auto", "kind", "docker"])),
    "services": _maybe(st.dictionaries(name, _maybe(service), min_size=1, max_size=3)),
    "routing": _maybe(st.fixed_dictionaries({}, optional={
        "header": hostile_text, "domain": hostile_text, "gateway_port": hostile_number})),
    "cluster": _maybe(st.fixed_dictionaries({}, optional={
        "name": hostile_text, "registry": hostile_text, "context": hostile_text})),
    "manifests": _maybe(st.fixed_dictionaries({"repo": hostile_text}, optional={
        "branch": hostile_text, "registry": hostile_text})),
    "docker": _maybe(st.fixed_dictionaries({}, optional={"envoy_image": hostile_text})),
})


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="devmesh-fuzz-"))
    for svc in ("api", "web"):
        (folder / "services" / svc).mkdir(parents=True)
        (folder / "services" / svc / "Dockerfile").write_text("FROM scratch\n")
    yield folder
    shutil.rmtree(folder)


def _check(root: Path, content: bytes) -> None:
    config = root / "devmesh.yaml"
    config.write_bytes(content)
    try:
        load_project(config)
    except ConfigErrors as caught:
        for error in caught.errors:
            assert isinstance(error, ConfigError)
            assert "\n" not in error.message  # one line per mistake
            # Only a missing field has no place in the file to point at.
            if error.line is None:
                assert "required field is missing" in error.problem, error.message
    except DevmeshError:
        pass  # a user error of devmesh's own, printed without a traceback


# Inputs that once escaped as crashes or wrong messages, kept as regressions.
@example(b"app: shop\nservices:\n  api:\n    port: " + b"9" * 5000 + b"\n")
@example(b"app: shop\nservices: &a\n  api: *a\n")
@example(b"app: shop\nservices:\n  true:\n    port: 1\n")
@example(b"app: shop\nservices:\n  api:\n    context: caf\xe9\n")
@example(b"app: shop\nservices:\n  api:\n    env: " + b"[" * 300 + b"]" * 300 + b"\n")
@example(b"app: shop\nservices:\n  api:\n    context: \"a\\0b\"\n")
@example(b"app: 2024-13-45\n")
@example(b"app: \x07\n")
@given(raw=st.binary(max_size=200))
@BUDGET
def test_raw_bytes(root: Path, raw: bytes) -> None:
    _check(root, raw)


@given(document=project)
@BUDGET
def test_generated_documents(root: Path, document: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    _check(root, text.encode("utf-8"))
