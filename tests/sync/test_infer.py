"""Sync rules, rebuild triggers and languages read from Dockerfiles (devmesh.dockerfile,
devmesh.dockerfile.infer), and a service without ``sync`` getting them at run time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devmesh.config import load_project
from devmesh.dockerfile import DockerfileError, read_image
from devmesh.dockerfile.infer import Inference, infer
from devmesh.sync.rules import ServiceSources
from tests.conftest import write_files

REPO = Path(__file__).resolve().parents[2]


def inferred(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None,
             build_args: dict[str, str] | None = None) -> Inference:
    write_files(tmp_path, {"Dockerfile": dockerfile, **(files or {})})
    image = read_image(tmp_path / "Dockerfile", tmp_path, build_args=build_args, shown="Dockerfile")
    return infer(image, tmp_path)


def rules(inference: Inference) -> list[tuple[str, str]]:
    return [(r.src, r.dest) for r in inference.rules]


def rebuilds(inference: Inference) -> tuple[str, ...]:
    return tuple(r.pattern for r in inference.rebuild_on)


def test_the_starters_dockerfile_syncs_its_context_into_the_workdir(tmp_path: Path) -> None:
    starter = Path(__file__).resolve().parents[2] / "presets/starters/shop/services/api/Dockerfile"
    got = inferred(tmp_path, starter.read_text(), {"app.py": "", "requirements.txt": ""})
    assert rules(got) == [(".", "/app")]
    assert rebuilds(got) == ()  # no RUN installs from requirements.txt
    assert (got.language, got.preset) == ("python", "python-web")
    assert got.language_reason == "the command runs python3 (python3 app.py)"
    assert got.notes == ()


def test_one_copied_file_goes_where_the_copy_puts_it(tmp_path: Path) -> None:
    got = inferred(tmp_path, "FROM python:3.12\nCOPY server.py /srv/server.py\nCMD [\"python\", \"/srv/server.py\"]\n",
                   {"server.py": ""})
    assert rules(got) == [("server.py", "/srv/server.py")]
    assert got.preset == "python-web"


@pytest.mark.parametrize(("copy", "dest"), [
    ("COPY app.py .", "/app/app.py"),
    ("COPY app.py ./", "/app/app.py"),
    ("COPY app.py /app", "/app/app.py"),  # the WORKDIR is a folder: the file goes into it
    ("COPY app.py /opt/main.py", "/opt/main.py"),
    ("COPY app.py lib/ /opt/", "/opt/app.py"),
    ('COPY ["app.py", "run/"]', "/app/run/app.py"),
])
def test_where_a_file_lands(tmp_path: Path, copy: str, dest: str) -> None:
    got = inferred(tmp_path, f"FROM node\nWORKDIR /app\n{copy}\nCMD node app.py\n", {"app.py": "", "lib/x.js": ""})
    assert rules(got)[0] == ("app.py", dest)


def test_a_folders_contents_go_into_the_destination(tmp_path: Path) -> None:
    got = inferred(tmp_path, "FROM node\nWORKDIR /srv\nCOPY src ./src\nCOPY public/ /var/www\nCMD [\"node\", \"src/index.js\"]\n",
                   {"src/index.js": "", "public/index.html": ""})
    assert rules(got) == [("src", "/srv/src"), ("public", "/var/www")]
    assert got.language == "node" and got.preset == "node-web"


def test_dependencies_copied_before_their_install_rebuild(tmp_path: Path) -> None:
    got = inferred(tmp_path, (
        "FROM python:3.12\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
        "COPY . .\nCMD [\"gunicorn\", \"app:app\"]\n"), {"requirements.txt": "", "app.py": ""})
    assert rules(got) == [(".", "/app")]
    assert rebuilds(got) == ("requirements.txt",)
    assert got.language_reason == "the command runs gunicorn (gunicorn app:app)"


def test_a_context_copied_before_an_install_rebuilds_on_its_manifests(tmp_path: Path) -> None:
    got = inferred(tmp_path, "FROM node\nWORKDIR /app\nCOPY . .\nRUN npm ci\nCMD npm start\n",
                   {"package.json": "{}", "package-lock.json": "{}", "index.js": ""})
    assert rules(got) == [(".", "/app")]
    assert rebuilds(got) == ("package-lock.json", "package.json")
    assert got.language == "node"  # through the shell form's /bin/sh -c


def test_sources_a_run_builds_are_not_synced(tmp_path: Path) -> None:
    got = inferred(tmp_path, "FROM node\nWORKDIR /app\nCOPY . .\nRUN npm ci && npm run build\nCMD [\"node\", \"dist/main.js\"]\n",
                   {"package.json": "{}", "src/main.ts": ""})
    assert rules(got) == []
    assert got.notes == ("Dockerfile:3: . is built by the RUN at line 4 (npm run build): a change to it rebuilds",)


def test_a_binary_built_in_another_stage_rebuilds_on_every_change(tmp_path: Path) -> None:
    got = inferred(tmp_path, (
        "FROM golang:1.26 AS build\nWORKDIR /src\nCOPY . .\nRUN go build -o /out/server .\n"
        "FROM debian:bookworm-slim\nCOPY --from=build /out/server /usr/local/bin/server\n"
        "ENTRYPOINT [\"/usr/local/bin/server\"]\n"), {"main.go": "", "go.mod": ""})
    assert rules(got) == []
    assert (got.language, got.preset) == ("compiled", "container")
    assert got.notes == (
        "Dockerfile:6: copies from stage build: a change to its sources rebuilds",
        "Dockerfile: the final stage copies only from other stages, so every change rebuilds the image",
    )


def test_variables_are_expanded_as_the_builder_does(tmp_path: Path) -> None:
    text = (
        "ARG BASE=python:3.12\nFROM ${BASE}\nARG APP_DIR=/srv\nENV HOME_DIR=${APP_DIR}/home PORT=8000\n"
        "WORKDIR $HOME_DIR\nCOPY src ${LIB:-lib}/\nCOPY [\"conf\", \"${APP_DIR}/my conf\"]\nCOPY 'x$y' \\$z/\n"
        "EXPOSE ${PORT}/tcp\nUSER ${APP_USER:-app}\nCMD [\"python3\", \"-m\", \"src\"]\n")
    files = {"src/__main__.py": "", "conf/a.ini": "", "x$y": ""}
    got = inferred(tmp_path, text, files)
    assert rules(got) == [("src", "/srv/home/lib"), ("conf", "/srv/my conf"), ("x$y", "/srv/home/$z/x$y")]
    assert got.user == "app"
    image = read_image(tmp_path / "Dockerfile", tmp_path, build_args={"APP_DIR": "/opt"})
    assert image.stage.workdir.as_posix() == "/opt/home" and image.stage.exposed == (8000,)
    assert image.stage.base == "python:3.12"


def test_two_stages_from_one_base_do_not_share_what_they_set(tmp_path: Path) -> None:
    got = inferred(tmp_path, (
        "FROM python:3.12 AS base\nENV DIR=/app\n"
        "FROM base AS other\nENV DIR=/elsewhere\n"
        "FROM base\nARG SUB=src\nARG WHERE=${DIR}/${SUB}\nCOPY . ${WHERE}\nCMD [\"python3\", \"main.py\"]\n"),
        {"main.py": ""})
    assert rules(got) == [(".", "/app/src")]


def test_a_stage_from_an_earlier_stage_keeps_its_copies(tmp_path: Path) -> None:
    got = inferred(tmp_path, (
        "FROM python:3.12 AS base\nWORKDIR /app\nCOPY . .\n"
        "FROM base AS dev\nENV DEBUG=1\nCMD [\"tini\", \"--\", \"python\", \"main.py\"]\n"), {"main.py": ""})
    assert rules(got) == [(".", "/app")]
    assert got.language == "python"


@pytest.mark.parametrize(("copy", "why"), [
    ("COPY *.py /app/", "*.py is a pattern; devmesh syncs named files and folders only"),
    ("ADD https://example.com/app.py /app/", "https://example.com/app.py is fetched from the network"),
    ("ADD vendor.tar.gz /opt/", "ADD unpacks the archive vendor.tar.gz"),
    ("COPY ../shared /shared", "../shared lies outside the build context"),
    ("COPY --parents src/ /app/", "devmesh does not follow --parents"),
    ("COPY <<EOF /app/x.txt\nhello\nEOF", "its content is written in the Dockerfile"),
])
def test_copies_devmesh_cannot_follow_are_noted_and_rebuild(tmp_path: Path, copy: str, why: str) -> None:
    got = inferred(tmp_path, f"FROM python:3.12\n{copy}\nCMD [\"python3\", \"/app/x.py\"]\n",
                   {"x.py": "", "vendor.tar.gz": "", "src/a.py": ""})
    assert rules(got) == []
    first_line = copy.splitlines()[0]
    assert got.notes == (f"Dockerfile:2: {first_line}: {why}; what it copies rebuilds",)


@pytest.mark.parametrize(("text", "message"), [
    ("", "Dockerfile: file with no instructions"),
    ("# just a comment\n", "Dockerfile: file with no instructions"),
    ("ARG X=1\n", "Dockerfile: no FROM instruction"),
    ("WORKDIR /app\nFROM x\n", "Dockerfile:1: WORKDIR before the first FROM"),
    ("FROM x\nCOPY onlyone\n", "Dockerfile:2: COPY needs a source and a destination"),
    ("FROM x\nCOPYY . /app\n", "Dockerfile:2: unknown instruction COPYY"),
    ("FROM x\nWORKDIR \"/app\n", "Dockerfile:2: unmatched \" in '\"/app'"),
    ("FROM x\nWORKDIR ${DIR%/}\n", "Dockerfile:2: devmesh cannot expand ${DIR%/} (only ${X}, ${X:-word} "
                                   "and ${X:+word} forms)"),
    ("FROM x\nWORKDIR ${DIR:?set DIR}\n", "Dockerfile:2: DIR is not set: set DIR"),
    ("FROM x\nRUN <<EOF\nno end\n", "Dockerfile: unterminated heredoc"),
])
def test_a_dockerfile_devmesh_cannot_read_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "Dockerfile").write_text(text)
    with pytest.raises(DockerfileError) as caught:
        read_image(tmp_path / "Dockerfile", tmp_path, shown="Dockerfile")
    assert str(caught.value) == message
    assert caught.value.exit_code == 2


def test_a_missing_dockerfile_says_so(tmp_path: Path) -> None:
    with pytest.raises(DockerfileError) as caught:
        read_image(tmp_path / "Dockerfile", tmp_path, shown="services/api/Dockerfile")
    assert str(caught.value).startswith("services/api/Dockerfile: cannot read it:")


# --- at run time -------------------------------------------------------------------------------


def _project(tmp_path: Path, service_lines: str, dockerfile: str, files: dict[str, str]) -> Path:
    write_files(tmp_path, {
        "devmesh.yaml": f"app: shop\nservices:\n  api:\n    context: services/api\n    port: 8000\n{service_lines}",
        "services/api/Dockerfile": dockerfile,
        **{f"services/api/{k}": v for k, v in files.items()},
    })
    return tmp_path / "devmesh.yaml"


def test_a_service_without_sync_gets_the_dockerfiles_rules(tmp_path: Path) -> None:
    config = _project(tmp_path, "", "FROM python:3.12\nWORKDIR /srv\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\n"
                      "COPY server.py .\nCMD python3 server.py\n", {"server.py": "", "requirements.txt": "", "notes.md": ""})
    sources = ServiceSources.of(load_project(config), "api")
    assert [(r.src, str(r.dest)) for r in sources.rules] == [("server.py", "/srv/server.py")]
    assert sources.inference is not None and sources.inference.dockerfile == "services/api/Dockerfile"
    assert sources.classify("server.py") == "sync"
    assert sources.rule_for("server.py").target("server.py").as_posix() == "/srv/server.py"  # type: ignore[union-attr]
    assert sources.classify("requirements.txt") == "rebuild"
    assert sources.rebuild_reason("requirements.txt") == "matches rebuild_on"
    assert sources.explain_rebuild("requirements.txt") == ("the RUN at services/api/Dockerfile:4 may "
                                                           "install from it (copied at line 3)")
    assert sources.rules[0].origin == "services/api/Dockerfile:5"
    assert sources.classify("notes.md") == "rebuild"  # the image does not hold it where a rule could place it


def test_rules_written_in_devmesh_yaml_win_and_an_empty_list_syncs_nothing(tmp_path: Path) -> None:
    dockerfile = "FROM python:3.12\nCOPY . /app\nCMD python3 /app/app.py\n"
    config = _project(tmp_path, "    sync: [{src: ., dest: /code}]\n", dockerfile, {"app.py": ""})
    sources = ServiceSources.of(load_project(config), "api")
    assert [str(r.dest) for r in sources.rules] == ["/code"] and sources.inference is None
    config = _project(tmp_path, "    sync: []\n", dockerfile, {"app.py": ""})
    assert ServiceSources.of(load_project(config), "api").rules == ()


def test_build_args_of_the_service_reach_the_dockerfile(tmp_path: Path) -> None:
    dockerfile = "FROM python:3.12\nARG DEST=/app\nCOPY . ${DEST}\nCMD python3 app.py\n"
    config = _project(tmp_path, "    build_args: {DEST: /opt/api}\n", dockerfile, {"app.py": ""})
    assert [str(r.dest) for r in ServiceSources.of(load_project(config), "api").rules] == ["/opt/api"]


# --- devmesh sync --explain ---------------------------------------------------------------------


def test_sync_explain_says_where_each_file_goes_or_why_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from devmesh.cli import cli
    from tests.conftest import git

    runner = CliRunner()
    root = tmp_path / "shop"
    assert runner.invoke(cli, ["init", "--starter", "shop", str(root)]).exit_code == 0
    write_files(root, {"services/api/.dockerignore": "secrets/\n", "services/api/secrets/key": "k",
                       "services/api/__pycache__/app.cpython-311.pyc": ""})
    git(root, "switch", "-q", "-c", "feat/login")
    monkeypatch.chdir(root / "services/api")

    def explain(*paths: str) -> tuple[int, list[str]]:
        done = runner.invoke(cli, ["sync", *(a for p in paths for a in ("--explain", p))])
        return done.exit_code, done.output.splitlines()

    code, lines = explain("app.py", "requirements.txt", "secrets/key", "__pycache__/app.cpython-311.pyc", "Dockerfile")
    assert code == 0, lines
    assert lines == [
        "services/api/app.py: api: synced to /app/app.py in its containers of branch feat/login (rule "
        ". → /app, from services/api/Dockerfile:5), then sent SIGHUP",
        "services/api/requirements.txt: api: rebuilds the image: matches rebuild_on 'requirements.txt'",
        "services/api/secrets/key: api: ignored: services/api/.dockerignore leaves it out of the image",
        "services/api/__pycache__/app.cpython-311.pyc: api: ignored: __pycache__/ is never synced",
        "services/api/Dockerfile: api: rebuilds the image: the Dockerfile",
    ]
    for path, message in (("../../README.md", "README.md: in no service's build context; a change to it does nothing"),
                          ("/etc/passwd", f"/etc/passwd: not in the project ({root.resolve()})")):
        done = subprocess.run([sys.executable, "-m", "devmesh", "sync", "--explain", path],
                              capture_output=True, text=True, cwd=root / "services/api",
                              env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 2 and done.stderr.splitlines()[0] == f"error: {message}", done.stderr


def test_a_changed_dockerfile_changes_the_rules_after_its_rebuild(tmp_path: Path) -> None:
    import functools

    from devmesh.events import Warning
    from devmesh.sync.changes import ChangeSet
    from devmesh.sync.engine import ServiceSync
    from devmesh.sync.events import SyncDone
    from tests.sync.container_model import FakeContainer, FakeTransport

    config = _project(tmp_path, "", "FROM scratch\nCOPY . /app\n", {"app.py": "v1"})
    project = load_project(config)
    dockerfile = tmp_path / "services/api/Dockerfile"
    next_dockerfile = ["FROM scratch\nCOPY . /srv\n", "FROM scratch\nWORKDIR \"/srv\n"]
    transport = FakeTransport([FakeContainer("api-1")])
    events: list[object] = []
    sync = ServiceSync(ServiceSources.of(project, "api"), "feat", transport, sink=events.append,
                       rebuild=lambda service: dockerfile.write_text(next_dockerfile.pop(0)),
                       refresh=functools.partial(ServiceSources.of, project, "api"))

    def change(path: str) -> object:
        changes = ChangeSet()
        changes.add(path, "modified")
        return sync.handle(changes)

    assert isinstance(change("app.py"), SyncDone)
    assert transport.containers["api-1"].fs.read("/app/app.py") == b"v1"
    assert change("Dockerfile").result == "rebuilt"  # type: ignore[attr-defined]
    assert isinstance(change("app.py"), SyncDone)
    assert transport.containers["api-1"].fs.read("/srv/app.py") == b"v1"
    change("Dockerfile")  # now one devmesh cannot read
    warnings = [str(e.message) for e in events if isinstance(e, Warning)]  # type: ignore[attr-defined]
    assert warnings[-1] == ("api: keeping the sync rules it had: services/api/Dockerfile:2: unmatched \" "
                            "in '\"/srv'")
    assert [str(r.dest) for r in sync.sources.rules] == ["/srv"]
