"""Content tags, the .dockerignore matcher, and image builds on a real Docker engine."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devmesh.build import (
    BaseImageUnavailable,
    BuildFailed,
    BuiltImage,
    DockerfileError,
    DockerUnavailable,
    content_tag,
    context_paths,
    docker_client,
    ensure_image,
    image_ref,
)
from devmesh.config import Project, load_project
from devmesh.dockerignore import IgnoreRules, clean_path, read_patterns, walk_context
from devmesh.errors import UserInputError
from devmesh.events import BuildDone, BuildProgress, Event, Warning


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


ProjectFactory = Callable[..., Project]


@pytest.fixture
def app_name() -> str:
    return "bt" + secrets.token_hex(4)


@pytest.fixture
def make_project(tmp_path: Path, app_name: str) -> ProjectFactory:
    """A project with one service ``api`` (context ``services/api``) and the given files."""

    def make(files: dict[str, str], *, dockerfile: str = "Dockerfile", context: str = "services/api",
             build_args: dict[str, str] | None = None, root: Path | None = None) -> Project:
        root = root or tmp_path / "project"
        args = "".join(f"      {k}: {v!r}\n" for k, v in (build_args or {}).items())
        config = (f"app: {app_name}\nservices:\n  api:\n    context: {context}\n"
                  f"    dockerfile: {dockerfile}\n    port: 8000\n")
        if args:
            config += "    build_args:\n" + args
        write(root, {"devmesh.yaml": config, **files})
        return load_project(root / "devmesh.yaml")

    return make


API = "services/api/"


# --- the .dockerignore matcher ------------------------------------------------------------


def excluded(text: str, path: str) -> bool:
    return IgnoreRules.parse(text).excludes(path)


@pytest.mark.parametrize(("text", "path", "expected"), [
    ("*.md", "README.md", True),
    ("*.md", "docs/README.md", False),             # '*' stays in one directory
    ("**/*.md", "docs/a/README.md", True),
    ("**/*.md", "README.md", True),                # '**/' matches no directory too
    ("docs", "docs/a/b.txt", True),                # a directory excludes what is under it
    ("/docs/", "docs/x", True),                    # leading and trailing '/' do not matter
    ("./docs", "docs/x", True),
    ("docs/*.md", "docs/x.md", True),
    ("temp?", "tempa", True),
    ("temp?", "temp", False),
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "temporary.txt", False),
    ("*/*/temp*", "a/b/temp", True),
    ("a/**", "a/b/c", True),
    ("a/**", "a", False),
    ("x/**/temp*", "x/temp1", True),
    ("x/**/temp*", "x/y/temp2", True),
    ("**foo", "barfoo", True),                     # Docker's suffix rule, checked with docker build
    ("[a-c].txt", "b.txt", True),
    ("[a-c].txt", "d.txt", False),
    ("[^a]*.txt", "b.txt", True),
    ("[^a]*.txt", "a.txt", False),
    ("weird\\[1\\].txt", "weird[1].txt", True),
    ("*.LOG", "x.log", False),                     # case-sensitive, unlike docker-py
    ("# comment", "# comment", False),
    (" # not a comment", "# not a comment", True),  # only column 1 starts a comment
    ("../a.txt", "a.txt", False),
    ("src/../b.md", "b.md", True),
    (".", "a", False),                             # '.' is ignored
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),  # the last match decides
    ("*.md\n!README*.md", "README.md", False),
    ("!a.txt\n*.txt", "a.txt", True),
    ("\ufeff*.md", "a.md", True),                  # a byte-order mark is dropped
])
def test_dockerignore_patterns(text: str, path: str, expected: bool) -> None:
    assert excluded(text, path) is expected


def test_dockerignore_reading_cleans_patterns() -> None:
    text = "# c\n\n  /a/b/  \n!  ./c/../d\n**/x\n"
    assert read_patterns(text) == [(3, "a/b"), (4, "!d"), (5, "**/x")]
    assert clean_path("a//b/./c/..") == "a/b"
    assert clean_path("../../x") == "../../x"
    assert clean_path("") == "."


@pytest.mark.parametrize(("text", "problem"), [
    ("ok\n!\n", ".dockerignore:2: '!' needs a pattern"),
    ("a[b\n", ".dockerignore:1: bad pattern 'a[b'"),
    ("[z-a]\n", "runs backwards"),
])
def test_dockerignore_rejects_malformed_lines(text: str, problem: str) -> None:
    with pytest.raises(UserInputError, match=problem.replace("[", r"\[")):
        IgnoreRules.parse(text)


def test_walk_enters_excluded_directory_only_for_a_literal_exception(tmp_path: Path) -> None:
    write(tmp_path, {"build/out.o": "", "build/keep.txt": "", "build/sub/deep": "", "src/a.py": ""})

    def sent(text: str) -> list[str]:
        return [e.path for e in walk_context(tmp_path, IgnoreRules.parse(text)) if e.kind == "file"]

    assert sent("build\n!build/keep.txt") == ["build/keep.txt", "src/a.py"]
    # Docker only walks into an excluded directory when an exception starts with its path.
    assert sent("build\n!**/keep.txt") == ["src/a.py"]
    assert sent("*\n!src") == ["src/a.py"]


def test_keeping_always_sends_dockerfile_and_dockerignore(tmp_path: Path) -> None:
    write(tmp_path, {".dockerignore": "*\n", "docker/api.Dockerfile": "", "a.txt": ""})
    rules = IgnoreRules.read(tmp_path).keeping([".dockerignore", "docker/api.Dockerfile"])
    paths = [e.path for e in walk_context(tmp_path, rules)]
    assert paths == [".dockerignore", "docker/api.Dockerfile"]


def test_walk_keeps_symlinks_and_skips_special_files(tmp_path: Path) -> None:
    write(tmp_path, {"real.txt": "x"})
    (tmp_path / "link").symlink_to("real.txt")
    (tmp_path / "dirlink").symlink_to(tmp_path)  # not followed
    os.mkfifo(tmp_path / "fifo")
    entries = {e.path: e for e in walk_context(tmp_path, IgnoreRules())}
    assert sorted(entries) == ["dirlink", "link", "real.txt"]
    assert entries["link"].kind == "symlink" and entries["link"].target == "real.txt"


# --- content tags (pure: no Docker) ---------------------------------------------------------


def test_tag_is_stable_and_changes_with_every_source(make_project: ProjectFactory, tmp_path: Path) -> None:
    project = make_project({API + "Dockerfile": "FROM base\nCOPY . /app\n", API + "app.py": "print(1)\n",
                            API + "lib/util.py": "X = 1\n"})
    api = project.root / API
    tag = content_tag(project, "api")
    assert len(tag) >= 12 and all(c in "0123456789abcdef" for c in tag)
    assert content_tag(project, "api") == tag

    # Another checkout of the same sources (the baseline worktree) has the same tag.
    other = tmp_path / "other"
    shutil.copytree(project.root, other)
    assert content_tag(project, "api", root=other) == tag
    # Times do not count, content does.
    os.utime(api / "app.py", (1, 1))
    assert content_tag(project, "api") == tag

    seen = {tag}

    def changed() -> str:
        new = content_tag(project, "api")
        assert new not in seen
        seen.add(new)
        return new

    (api / "app.py").write_text("print(2)\n")
    changed()
    (api / "lib/util.py").rename(api / "lib/util2.py")
    changed()
    (api / "empty").mkdir()
    changed()
    (api / "lib/util2.py").chmod(0o755)
    changed()
    (api / "Dockerfile").write_text("FROM base\nCOPY . /srv\n")
    changed()
    (api / "link").symlink_to("app.py")
    changed()
    with_arg = content_tag(project, "api", build_args_override={"MODE": "dev"})
    assert with_arg not in seen
    assert content_tag(project, "api", build_args_override={"MODE": "prod"}) != with_arg
    assert content_tag(project, "api", root=other) == tag  # the other checkout is untouched


def test_build_args_are_part_of_the_tag(make_project: ProjectFactory, tmp_path: Path) -> None:
    files = {API + "Dockerfile": "FROM base\n"}
    a = make_project(files, build_args={"A": "1", "B": "2"}, root=tmp_path / "a")
    b = make_project(files, build_args={"B": "2", "A": "1"}, root=tmp_path / "b")
    c = make_project(files, build_args={"A": "1", "B": "3"}, root=tmp_path / "c")
    assert content_tag(a, "api") == content_tag(b, "api") != content_tag(c, "api")
    # An override wins over devmesh.yaml.
    assert content_tag(c, "api", build_args_override={"B": "2"}) == content_tag(a, "api")


def test_ignored_files_do_not_change_the_tag(make_project: ProjectFactory) -> None:
    project = make_project({
        API + "Dockerfile": "FROM base\n", API + "app.py": "1\n",
        API + ".dockerignore": "# local junk\n*.log\n__pycache__\nnotes/\n!notes/KEEP.md\n",
        API + "debug.log": "a\n", API + "__pycache__/app.pyc": "a\n", API + "notes/todo.md": "a\n",
        API + "notes/KEEP.md": "a\n",
    })
    api = project.root / API
    paths = context_paths(project, "api")
    assert paths == [".dockerignore", "Dockerfile", "app.py", "notes/KEEP.md"]
    tag = content_tag(project, "api")
    (api / "debug.log").write_text("b\n")
    (api / "__pycache__/app.pyc").write_text("b\n")
    (api / "__pycache__/new.pyc").write_text("b\n")
    (api / "notes/todo.md").write_text("b\n")
    (api / "notes/other.log").write_text("b\n")
    assert content_tag(project, "api") == tag
    (api / "notes/KEEP.md").write_text("b\n")  # the exception is sent, so it counts
    assert content_tag(project, "api") != tag


def test_dockerfile_outside_the_context(make_project: ProjectFactory) -> None:
    project = make_project({API + "app.py": "1\n", "docker/api.Dockerfile": "FROM base\n"},
                           dockerfile="../../docker/api.Dockerfile")
    tag = content_tag(project, "api")
    assert context_paths(project, "api") == ["app.py"]
    (project.root / "docker/api.Dockerfile").write_text("FROM base\nCOPY . /app\n")
    assert content_tag(project, "api") != tag


def test_dockerfile_outside_the_project_is_refused(make_project: ProjectFactory) -> None:
    # devmesh.yaml validation refuses it; content_tag checks again for other checkouts.
    with pytest.raises(UserInputError, match="lies outside the project"):
        project = make_project({API + "app.py": "1\n"}, dockerfile="../../../Dockerfile")
        content_tag(project, "api")


def test_tag_of_a_thousand_files_is_fast(make_project: ProjectFactory) -> None:
    files = {API + "Dockerfile": "FROM base\n"}
    for i in range(1000):
        files[f"{API}pkg{i % 25}/mod{i}.py"] = f"VALUE = {i}\n" * 100
    project = make_project(files)
    content_tag(project, "api")  # warm the page cache
    started = time.perf_counter()
    content_tag(project, "api")
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"hashing 1000 files took {elapsed:.2f} s"


def test_unreachable_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(DockerUnavailable) as err:
        docker_client(timeout=2)
    message = str(err.value)
    assert message.startswith(f"cannot reach the Docker engine at unix://{tmp_path}/no-such.sock: ")
    assert "No such file or directory" in message
    assert "sudo systemctl start docker" in message and "DOCKER_HOST" in message


# --- builds on a real engine ----------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    c = docker_client()
    yield c
    c.close()


@pytest.fixture(scope="module")
def base_image(client: Any) -> Iterator[str]:
    """A tiny local base image (one file, no shell): nothing needs a registry."""
    name = f"devmesh-test/build-base:{secrets.token_hex(4)}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        data = b"hello\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    repo, tag = name.split(":")
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag)
    base_id = client.api.inspect_image(name)["Id"]
    yield name
    remove_descendants(client, base_id)
    client.api.remove_image(base_id, force=True)


def remove_descendants(client: Any, image_id: str) -> None:
    """Remove every image built on ``image_id``, children first — including the layers a
    failed build leaves behind as build cache (they carry no labels yet)."""
    import docker.errors

    children: dict[str, list[str]] = {}
    for image in client.api.images(all=True):
        children.setdefault(image.get("ParentId", ""), []).append(image["Id"])
    order: list[str] = []
    todo = list(children.get(image_id, []))
    while todo:
        current = todo.pop()
        order.append(current)
        todo.extend(children.get(current, []))
    for current in reversed(order):
        try:
            client.api.remove_image(current, force=True)
        except docker.errors.NotFound:
            pass  # went with a child already


@pytest.fixture
def built(client: Any, app_name: str) -> Iterator[None]:
    """Removes every image the test built (found by devmesh's labels) afterwards."""
    yield
    for image in client.images.list(filters={"label": f"devmesh.dev/app={app_name}"}):
        client.api.remove_image(image.id, force=True)


def image_files(client: Any, ref: str, path: str) -> dict[str, bytes]:
    """The regular files under ``path`` in ``ref`` (the image has no shell: copy them out)."""
    container = client.containers.create(ref, command=["/none"])
    try:
        stream, _ = container.get_archive(path)
        data = b"".join(stream)
    finally:
        container.remove(force=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        prefix = path.strip("/").rsplit("/", 1)[-1] + "/"
        return {m.name.removeprefix(prefix): tar.extractfile(m).read()  # type: ignore[union-attr]
                for m in tar.getmembers() if m.isfile()}


class Events(list[Event]):
    def __call__(self, event: Event) -> None:
        self.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        return [e for e in self if isinstance(e, kind)]


@pytest.mark.docker
def test_build_then_cached(client: Any, base_image: str, make_project: ProjectFactory, built: None) -> None:
    project = make_project({
        API + "Dockerfile": f"FROM {base_image}\nARG MODE=prod\nCOPY app.py /app/\nCOPY lib /app/lib\n",
        API + "app.py": "print('hi')\n", API + "lib/util.py": "X = 1\n",
    })
    events = Events()
    first = ensure_image(client, project, "api", sink=events)
    assert isinstance(first, BuiltImage) and not first.cached
    assert first.ref == image_ref(project, "api", first.tag) == f"devmesh.local/{project.app}/api:{first.tag}"
    assert first.tag == content_tag(project, "api")

    progress = events.of(BuildProgress)
    steps = [(e.step, e.steps) for e in progress if e.step is not None]
    assert steps[0][0] == 1 and steps[-1][0] == steps[-1][1]  # every step, through the last
    assert {s for s, _ in steps} == set(range(1, steps[-1][1] + 1))
    assert any("COPY app.py /app/" in e.message for e in progress)
    done = events.of(BuildDone)
    assert len(done) == 1 and not done[0].cached and done[0].image == first.ref

    labels = client.api.inspect_image(first.ref)["Config"]["Labels"]
    assert labels["app.kubernetes.io/managed-by"] == "devmesh"
    assert labels["devmesh.dev/app"] == project.app and labels["devmesh.dev/service"] == "api"

    again = Events()
    second = ensure_image(client, project, "api", sink=again)
    assert second.cached and second.ref == first.ref
    assert not again.of(BuildProgress)  # no build at all
    (done_again,) = again.of(BuildDone)
    assert done_again.cached and done_again.image == first.ref
    assert second.seconds < first.seconds


@pytest.mark.docker
def test_sent_context_is_what_was_hashed(client: Any, base_image: str, make_project: ProjectFactory,
                                         built: None) -> None:
    """Dockerfile outside the context, .dockerignore with an exception: the image holds
    exactly the files the tag was computed from, and not the Dockerfile devmesh added."""
    project = make_project({
        "docker/api.Dockerfile": f"FROM {base_image}\nCOPY . /ctx/\n",
        API + ".dockerignore": "*.log\nnotes\n!notes/KEEP.md\n",
        API + "app.py": "print('hi')\n", API + "run.sh": "#!/bin/sh\n", API + "debug.log": "x\n",
        API + "notes/todo.md": "x\n", API + "notes/KEEP.md": "keep\n",
    }, dockerfile="../../docker/api.Dockerfile")
    (project.root / API / "run.sh").chmod(0o755)
    result = ensure_image(client, project, "api")
    assert result.tag == content_tag(project, "api")  # what was sent is what was hashed
    files = image_files(client, result.ref, "/ctx")
    assert sorted(files) == [".dockerignore", "app.py", "notes/KEEP.md", "run.sh"]
    assert sorted(files) == [p for p in context_paths(project, "api") if p != "notes"]
    assert files["app.py"] == b"print('hi')\n"
    # The user's .dockerignore is kept, plus the line that hides devmesh's Dockerfile copy.
    assert files[".dockerignore"].startswith(b"*.log\nnotes\n!notes/KEEP.md\n")


@pytest.mark.docker
def test_failed_step_is_named_and_leaves_nothing(client: Any, base_image: str,
                                                 make_project: ProjectFactory, built: None) -> None:
    marker = "devmesh-marker-" + secrets.token_hex(4)
    project = make_project({
        API + "Dockerfile": f"FROM {base_image}\nCOPY app.py /app/\nRUN false {marker}\nCOPY app.py /b/\n",
        API + "app.py": "1\n",
    })
    tag = content_tag(project, "api")
    with pytest.raises(BuildFailed) as err:
        ensure_image(client, project, "api")
    failure = err.value
    assert str(failure).startswith(f"build of api failed at step 3/4 (RUN false {marker}): ")
    assert (failure.service, failure.step, failure.steps) == ("api", 3, 4)
    assert failure.error
    assert not client.images.list(name=image_ref(project, "api", tag))
    leftovers = [c for c in client.containers.list(all=True) if marker in c.attrs.get("Command", "")]
    assert leftovers == []


@pytest.mark.docker
def test_missing_file_in_copy_names_the_step(client: Any, base_image: str,
                                             make_project: ProjectFactory, built: None) -> None:
    project = make_project({API + "Dockerfile": f"FROM {base_image}\nCOPY nope.txt /x\n"})
    expected = r"^build of api failed at step 2/2 \(COPY nope.txt /x\): .*nope.txt"
    with pytest.raises(BuildFailed, match=expected):
        ensure_image(client, project, "api")


@pytest.mark.docker
def test_dockerfile_syntax_error_names_file_and_line(client: Any, base_image: str,
                                                     make_project: ProjectFactory, built: None) -> None:
    project = make_project({API + "Dockerfile": f"FROM {base_image}\n\nCOPPY a b\n"})
    expected = r"^build of api failed: services/api/Dockerfile:3: unknown instruction: COPPY"
    with pytest.raises(DockerfileError, match=expected):
        ensure_image(client, project, "api")


@pytest.mark.docker
def test_missing_base_image_is_named_with_a_hint(client: Any, make_project: ProjectFactory,
                                                 built: None) -> None:
    project = make_project({API + "Dockerfile": "ARG BASE_IMAGE=devmesh.invalid/none/base:1\n"
                                                "FROM ${BASE_IMAGE}\nCOPY . /app\n"})
    with pytest.raises(BaseImageUnavailable) as err:
        ensure_image(client, project, "api")
    assert err.value.image == "devmesh.invalid/none/base:1"
    assert ("base image devmesh.invalid/none/base:1 is not on this machine and could not be "
            "pulled") in str(err.value)
    assert "build_args.BASE_IMAGE" in (err.value.hint or "")


@pytest.mark.docker
def test_undeclared_build_arg_is_a_warning(client: Any, base_image: str, make_project: ProjectFactory,
                                           built: None) -> None:
    project = make_project({API + "Dockerfile": f"FROM {base_image}\nCOPY Dockerfile /\n"},
                           build_args={"NOT_DECLARED": "1"})
    events = Events()
    result = ensure_image(client, project, "api", sink=events)
    assert not result.cached
    (warning,) = events.of(Warning)
    assert "NOT_DECLARED is not declared in services/api/Dockerfile" in warning.message


@pytest.mark.docker
@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker command")
@pytest.mark.parametrize("ignore", [
    "build\n!build/keep.txt\n**/*.pyc\n",
    "build\n!**/keep.txt\n**foo\n",
    "*\n!src\n!*/keep*\n",
])
def test_matcher_agrees_with_docker_build(client: Any, base_image: str, tmp_path: Path, ignore: str) -> None:
    """The Docker CLI's own context upload is the reference for the matcher."""
    write(tmp_path, {name: name for name in (
        "a.txt", "build/out.o", "build/keep.txt", "build/sub/x", "src/m.py", "src/m.pyc",
        "src/p/__pycache__/n.pyc", "barfoo", "q/foo", "docs/keep.md")})
    write(tmp_path, {"Dockerfile": f"FROM {base_image}\nCOPY . /ctx/\n", ".dockerignore": ignore})
    tag = f"devmesh-test/matcher:{secrets.token_hex(4)}"
    done = subprocess.run(["docker", "build", "-q", "-t", tag, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "DOCKER_BUILDKIT": "0"}, timeout=60)
    assert done.returncode == 0, done.stderr
    try:
        docker_sent = set(image_files(client, tag, "/ctx"))
    finally:
        client.api.remove_image(tag, force=True)
    rules = IgnoreRules.read(tmp_path)
    special = (".dockerignore", "Dockerfile")  # always sent; the builder drops them if excluded
    ours = {e.path for e in walk_context(tmp_path, rules.keeping(special))
            if e.kind == "file" and not (e.path in special and rules.excludes(e.path))}
    assert ours == docker_sent
