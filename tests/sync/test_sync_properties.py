"""Property tests: no change set writes or deletes outside its rule's destination.

The strongest form runs the whole path — change set, plan, tar stream, extraction — against
an in-memory container whose destination already holds hostile symbolic links (pointing to
``/etc``, ``/``, up the tree, in loops), from a source tree that holds hostile links of its
own, with change sets that name garbage paths. Whatever happens, everything outside the
destination must be byte-for-byte what it was.
"""

from __future__ import annotations

import copy
import os
import posixpath
import tempfile
from pathlib import Path, PurePosixPath

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devmesh.dockerignore import IgnoreRules
from devmesh.sync.archive import build_archive
from devmesh.sync.changes import ChangeSet, plan_sync
from devmesh.sync.rules import Rule, ServiceSources, UnsafePath, clean_relative, inside
from devmesh.sync.transport import Target, TransportError
from tests.sync.container_model import ContainerFS, FakeContainer, FakeTransport, LoopError, Node

NAMES = st.sampled_from(["a", "b", "c", "x.py"])
REL = st.lists(NAMES, min_size=1, max_size=3).map("/".join)
GARBAGE = st.sampled_from(["..", "../x", "a/../../b", "/etc/passwd", "/", "./a//b", "a/./../..", "", "a/\0"])
LINK_TARGETS = st.one_of(
    REL,
    st.sampled_from(["/etc", "/", "..", "../..", "../../..", "a/../..", "/etc/passwd", ".", "../a",
                     "/outside", "../../outside", "/outside/a",
                     "a/../b", "b/../../a", "/app", "/app/../etc", "x.py/.."]),
)
RULES = st.sampled_from([
    (Rule("", PurePosixPath("/app")),),
    (Rule("a", PurePosixPath("/app/a")), Rule("", PurePosixPath("/app"))),
    (Rule("a", PurePosixPath("/srv/a-dest")), Rule("b", PurePosixPath("/app/b"))),
])
KINDS = st.sampled_from(["added", "modified", "deleted"])
Entry = tuple[str, str, str]  # (kind, path, link target)
ENTRIES = st.lists(st.tuples(st.sampled_from(["dir", "file", "link"]), REL, LINK_TARGETS), max_size=12)


def sources_for(context: Path, rules: tuple[Rule, ...]) -> ServiceSources:
    rules = tuple(sorted(rules, key=lambda r: -len(r.src.split("/")) if r.src else 0))
    return ServiceSources("api", context, rules, (), IgnoreRules(), "Dockerfile")


def build_local(context: Path, entries: list[Entry], absolute_into: Path) -> None:
    for kind, rel, target in entries:
        path = context / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind == "dir":
                path.mkdir(exist_ok=True)
            elif kind == "file":
                path.write_text(f"content of {rel}\n")
            else:
                if target.startswith("/app"):  # an absolute link into the source tree
                    target = str(absolute_into) + target[len("/app"):]
                os.symlink(target, path)
        except OSError:
            continue  # a parent is a file or a link, or the path exists: keep what is there


def build_container(entries: list[Entry], rules: tuple[Rule, ...]) -> ContainerFS:
    fs = ContainerFS()
    fs.put("/etc/passwd", Node("file", b"root:x:0:0\n"))
    for name in ("a", "b", "x.py"):  # names a change set may use, where links lead
        fs.put(f"/etc/{name}", Node("file", b"precious\n"))
        fs.put(f"/outside/{name}/x.py", Node("file", b"precious\n"))
    for rule in rules:
        fs.mkdir(str(rule.dest))
    dest = str(rules[0].dest)
    for kind, rel, target in entries:
        path = posixpath.join(dest, rel)
        if kind == "dir":
            fs.mkdir(path)
        elif kind == "file":
            fs.put(path, Node("file", b"old\n"))
        else:
            fs.put(path, Node("link", target=target))
    return fs


def outside_dests(fs: ContainerFS, dests: list[str]) -> dict[str, Node]:
    return {k: copy.deepcopy(v) for k, v in fs.nodes.items()
            if not any(k == d or k.startswith(d + "/") for d in dests)}


# --- path mapping ---------------------------------------------------------------------------


@given(raw=st.one_of(REL, GARBAGE, st.text(alphabet="ab./\0", max_size=12)), rules=RULES)
def test_mapped_paths_stay_inside_the_destination(raw: str, rules: tuple[Rule, ...]) -> None:
    try:
        rel = clean_relative(raw)
    except UnsafePath:
        return
    assert ".." not in rel.split("/") and not rel.startswith("/")
    for rule in rules:
        if rule.covers(rel):
            target = rule.target(rel)
            assert inside(target, rule.dest)
            assert ".." not in target.parts


@settings(max_examples=200, deadline=None)
@given(where=REL, target=LINK_TARGETS, rules=RULES, outside=st.booleans())
def test_link_targets_stay_inside_the_destination(where: str, target: str, rules: tuple[Rule, ...],
                                                  outside: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp) / "ctx"
        context.mkdir()
        if outside:  # a real folder outside the context, for targets that would reach it
            (Path(tmp) / "etc").mkdir()
        sources = sources_for(context.resolve(), rules)
        rule = sources.rule_for(where)
        if rule is None or rule.is_file:
            return
        link = context / where
        link.parent.mkdir(parents=True, exist_ok=True)
        if target.startswith("/app"):
            target = str(context) + target[len("/app"):]
        os.symlink(target, link)
        try:
            sent = sources.link_target(rule, where, target)
        except UnsafePath:
            return
        assert not sent.startswith("/")
        container_path = rule.target(where)
        resolved = PurePosixPath(posixpath.normpath(posixpath.join(str(container_path.parent), sent)))
        assert inside(resolved, rule.dest), (where, target, sent)


# --- the whole path, against a hostile container ----------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(local=ENTRIES, remote=ENTRIES, rules=RULES,
       changed=st.lists(st.tuples(st.one_of(REL, GARBAGE), KINDS), min_size=1, max_size=10))
def test_no_change_set_touches_anything_outside_its_destination(
        local: list[Entry], remote: list[Entry], rules: tuple[Rule, ...],
        changed: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        context = (Path(tmp) / "ctx")
        context.mkdir()
        context = context.resolve()
        build_local(context, local, context)
        sources = sources_for(context, rules)
        changes = ChangeSet()
        for path, kind in changed:
            changes.add(path, kind)  # type: ignore[arg-type]
        plan = plan_sync(sources, changes)

        fs = build_container(remote, rules)
        dests = sorted({str(r.dest) for r in rules})
        before = outside_dests(fs, dests)
        container = FakeContainer("c", fs)
        transport = FakeTransport([container])
        archive = build_archive(plan.uploads) if plan.uploads else None
        try:
            transport.apply(Target("c", "c", "api", "env"), archive, plan.deletions)
        except (TransportError, LoopError):
            pass  # a refused deletion, or a container path that cannot be written: fine
        finally:
            if archive is not None:
                archive.close()

        assert outside_dests(fs, dests) == before
        for where in fs.writes + fs.removals:
            assert any(where == d or where.startswith(d + "/") for d in dests), where
        for upload in plan.uploads:
            assert any(inside(upload.path, r.dest) for r in rules)
            if upload.kind == "symlink":
                rule = next(r for r in rules if inside(upload.path, r.dest))
                resolved = posixpath.normpath(posixpath.join(str(upload.path.parent), upload.link))
                assert inside(PurePosixPath(resolved), rule.dest)
        for deletion in plan.deletions:
            assert deletion.path != deletion.dest and inside(deletion.path, deletion.dest)
