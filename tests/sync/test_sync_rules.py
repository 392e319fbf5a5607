"""Sync rules and plans: what is synced where, what rebuilds, what is ignored or refused."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest

from devmesh.errors import UserInputError
from devmesh.sync.changes import ChangeSet, plan_sync
from devmesh.sync.rules import UnsafePath, clean_relative
from tests.sync.conftest import SourcesFactory


def changes(*items: tuple[str, str]) -> ChangeSet:
    cs = ChangeSet()
    for path, kind in items:
        cs.add(path, kind)  # type: ignore[arg-type]
    return cs


def paths(plan_items: object) -> list[str]:
    return [str(u.path) for u in plan_items]  # type: ignore[attr-defined]


@pytest.mark.parametrize("raw, cleaned", [
    ("app.py", "app.py"), ("./lib//util.py", "lib/util.py"), ("lib/./x/", "lib/x"),
])
def test_clean_relative_normalises(raw: str, cleaned: str) -> None:
    assert clean_relative(raw) == cleaned


@pytest.mark.parametrize("raw, why", [
    ("../web/app.py", "'..'"), ("lib/../../x", "'..'"), ("/etc/passwd", "absolute"),
    ("", "empty"), ("./", "empty"), ("a\0b", "NUL"),
])
def test_clean_relative_refuses(raw: str, why: str) -> None:
    with pytest.raises(UnsafePath, match=why):
        clean_relative(raw)


def test_classification(make_sources: SourcesFactory) -> None:
    src = make_sources(files={".dockerignore": "secrets\n*.log\n", "venv1/pyvenv.cfg": "home = /usr\n"})
    assert src.classify("app.py") == "sync"
    assert src.classify("lib/util.py") == "sync"
    assert src.classify("requirements.txt") == "rebuild"
    assert src.classify("Dockerfile") == "rebuild"
    assert src.classify(".dockerignore") == "rebuild"
    for ignored in (".git/HEAD", "lib/__pycache__/util.cpython-311.pyc", "node_modules/x/index.js",
                    ".venv/bin/python", "venv1/lib/site.py", "app.py.swp", "app.py~", ".#app.py",
                    "4913", "secrets/key", "debug.log", "lib/app.pyc"):
        assert src.classify(ignored) == "ignored", ignored


def test_a_path_outside_every_rule_rebuilds(make_sources: SourcesFactory) -> None:
    src = make_sources(sync="[{src: lib, dest: /srv/lib}]")
    assert src.classify("lib/util.py") == "sync"
    assert src.classify("app.py") == "rebuild"
    assert src.rebuild_reason("app.py") == "no sync rule covers it"


def test_rebuild_on_patterns_match_folders_and_globs(make_sources: SourcesFactory) -> None:
    src = make_sources(rebuild_on='["**/*.lock", vendor, "requirements*.txt"]')
    assert src.classify("poetry.lock") == "rebuild"
    assert src.classify("sub/yarn.lock") == "rebuild"
    assert src.classify("vendor/pkg/mod.py") == "rebuild"
    assert src.classify("requirements-dev.txt") == "rebuild"
    assert src.classify("app.py") == "sync"


def test_bad_rebuild_pattern_names_the_field(make_sources: SourcesFactory) -> None:
    with pytest.raises(UserInputError, match=r"services\.api\.rebuild_on\[0\]: bad pattern '\[a'"):
        make_sources(rebuild_on='["[a"]')


def test_most_specific_rule_wins(make_sources: SourcesFactory) -> None:
    src = make_sources(sync="[{src: ., dest: /app}, {src: lib, dest: /opt/lib}, {src: app.py, dest: /srv/main.py}]")
    assert src.rule_for("lib/util.py").target("lib/util.py") == PurePosixPath("/opt/lib/util.py")  # type: ignore[union-attr]
    assert src.rule_for("app.py").target("app.py") == PurePosixPath("/srv/main.py")  # type: ignore[union-attr]
    assert src.rule_for("other.py").target("other.py") == PurePosixPath("/app/other.py")  # type: ignore[union-attr]


def test_modified_file_uploads_it_with_its_parents(make_sources: SourcesFactory) -> None:
    src = make_sources()
    plan = plan_sync(src, changes(("lib/util.py", "modified")))
    assert paths(plan.uploads) == ["/app/lib", "/app/lib/util.py"]
    assert [u.kind for u in plan.uploads] == ["dir", "file"]
    assert plan.deletions == () and plan.rebuild == () and plan.files == 1


def test_deleted_file_is_deleted_in_the_container(make_sources: SourcesFactory) -> None:
    src = make_sources()
    os.remove(src.context / "lib/util.py")
    plan = plan_sync(src, changes(("lib/util.py", "deleted")))
    assert plan.uploads == ()
    assert [(str(d.path), str(d.dest)) for d in plan.deletions] == [("/app/lib/util.py", "/app")]


def test_rename_is_a_deletion_and_an_upload(make_sources: SourcesFactory) -> None:
    src = make_sources()
    os.rename(src.context / "lib/util.py", src.context / "lib/helpers.py")
    plan = plan_sync(src, changes(("lib/util.py", "deleted"), ("lib/helpers.py", "added")))
    assert paths(plan.deletions) == ["/app/lib/util.py"]
    assert paths(plan.uploads) == ["/app/lib", "/app/lib/helpers.py"]


def test_folder_moved_in_is_sent_whole_without_ignored_files(make_sources: SourcesFactory) -> None:
    src = make_sources(files={"pkg/a.py": "", "pkg/sub/b.py": "", "pkg/__pycache__/a.pyc": "",
                              "pkg/.git/config": ""})
    plan = plan_sync(src, changes(("pkg", "added")))
    assert paths(plan.uploads) == ["/app/pkg", "/app/pkg/a.py", "/app/pkg/sub", "/app/pkg/sub/b.py"]


def test_folder_replacing_a_file_clears_the_file_first(make_sources: SourcesFactory) -> None:
    src = make_sources(files={"thing/x.py": ""})
    plan = plan_sync(src, changes(("thing", "deleted"), ("thing", "added")))
    assert paths(plan.deletions) == ["/app/thing"]
    assert paths(plan.uploads) == ["/app/thing", "/app/thing/x.py"]


def test_gone_source_root_is_not_deleted(make_sources: SourcesFactory) -> None:
    src = make_sources(sync="[{src: lib, dest: /srv/lib}]")
    (src.context / "lib/util.py").unlink()
    (src.context / "lib").rmdir()
    plan = plan_sync(src, changes(("lib", "deleted")))
    assert plan.deletions == ()
    assert "the sync source itself is gone" in plan.refused[0].reason


def test_nested_deletions_collapse(make_sources: SourcesFactory) -> None:
    src = make_sources()
    plan = plan_sync(src, changes(("gone", "deleted"), ("gone/a.py", "deleted"), ("gone/b/c.py", "deleted")))
    assert paths(plan.deletions) == ["/app/gone"]


def test_rebuild_wins_over_sync(make_sources: SourcesFactory) -> None:
    src = make_sources()
    plan = plan_sync(src, changes(("app.py", "modified"), ("requirements.txt", "modified")))
    assert plan.rebuild == (("requirements.txt", "matches rebuild_on"),)


def test_ignored_changes_plan_nothing(make_sources: SourcesFactory) -> None:
    src = make_sources()
    plan = plan_sync(src, changes((".git/index", "modified"), ("app.py.swp", "added")))
    assert plan.empty and plan.refused == ()


def test_symlink_inside_the_tree_is_sent_relative(make_sources: SourcesFactory) -> None:
    src = make_sources()
    os.symlink("../app.py", src.context / "lib/alias.py")
    os.symlink(str(src.context / "lib/util.py"), src.context / "abs.py")
    plan = plan_sync(src, changes(("lib/alias.py", "added"), ("abs.py", "added")))
    links = {str(u.path): u.link for u in plan.uploads if u.kind == "symlink"}
    assert links == {"/app/lib/alias.py": "../app.py", "/app/abs.py": "lib/util.py"}


@pytest.mark.parametrize("target", ["/etc/passwd", "../../web/app.py", "lib/../../x", "/"])
def test_symlink_leaving_the_tree_is_refused(make_sources: SourcesFactory, target: str) -> None:
    src = make_sources()
    os.symlink(target, src.context / "evil")
    plan = plan_sync(src, changes(("evil", "added")))
    assert plan.uploads == ()
    assert plan.refused[0].path == "evil" and "outside" in plan.refused[0].reason


def test_symlink_chain_leaving_the_tree_is_refused(make_sources: SourcesFactory, tmp_path: os.PathLike[str]) -> None:
    src = make_sources()
    os.symlink("/etc", src.context / "lib/out")  # refused itself, and ...
    os.symlink("lib/out/passwd", src.context / "innocent")  # ... leads outside once resolved
    plan = plan_sync(src, changes(("innocent", "added"), ("lib/out", "added")))
    assert {r.path for r in plan.refused} == {"innocent", "lib/out"}
    assert plan.files == 0


def test_symlink_to_the_rule_root_of_a_subfolder_rule(make_sources: SourcesFactory) -> None:
    src = make_sources(sync="[{src: lib, dest: /srv/lib}]")
    os.symlink("../app.py", src.context / "lib/up.py")  # inside the context, outside the rule's tree
    plan = plan_sync(src, changes(("lib/up.py", "added")))
    assert "outside" in plan.refused[0].reason


def test_paths_below_a_linked_folder_are_refused(make_sources: SourcesFactory, tmp_path: os.PathLike[str]) -> None:
    src = make_sources()
    outside = os.path.join(tmp_path, "elsewhere")
    os.makedirs(outside)
    with open(os.path.join(outside, "x.py"), "w") as f:
        f.write("")
    os.symlink(outside, src.context / "linked")
    plan = plan_sync(src, changes(("linked/x.py", "modified")))
    assert plan.uploads == ()
    assert "below linked, a symbolic link" in plan.refused[0].reason


def test_garbage_paths_are_refused_not_planned(make_sources: SourcesFactory) -> None:
    src = make_sources()
    plan = plan_sync(src, changes(("../web/app.py", "modified"), ("/etc/passwd", "modified")))
    assert plan.empty and len(plan.refused) == 2


def test_single_file_rule(make_sources: SourcesFactory) -> None:
    src = make_sources(sync="[{src: app.py, dest: /srv/main.py}]", rebuild_on="[]")
    plan = plan_sync(src, changes(("app.py", "modified")))
    assert paths(plan.uploads) == ["/srv/main.py"]  # the destination's folders are not touched


def test_a_pattern_matches_the_whole_name_not_a_name_with_a_newline_more() -> None:
    """Docker's (Go's) `$` is the end of the text; Python's would also match before a final newline."""
    from devmesh.dockerignore import Pattern

    pattern = Pattern.compile("a?c", False)
    assert pattern.match("abc")
    assert not pattern.match("abc\n")
