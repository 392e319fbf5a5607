"""`devmesh init`: the starter app as a real git repository, and devmesh.yaml from Dockerfiles."""

from __future__ import annotations

from pathlib import Path

import git as gitpython
import pytest

from devmesh.cli import main
from devmesh.config import load_project
from devmesh.scaffold import FALLBACK_AUTHOR, dns_label, exposed_port, scan
from tests.conftest import git, write_files


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``devmesh ARGS``; return the exit status and what it printed."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


# --- the starter ------------------------------------------------------------------------


def test_starter_is_a_git_repository_with_one_commit_and_a_valid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "shop"
    code, out, err = run(capsys, "init", "--starter", "shop", str(dest))
    assert code == 0, err
    assert f"cd {dest}" in out and "devmesh render" in out

    with gitpython.Repo(dest) as repo:
        assert repo.active_branch.name == "main"
        assert len(list(repo.iter_commits())) == 1
        assert not repo.is_dirty(untracked_files=True)
        head = repo.head.commit
        assert (head.author.name, head.author.email) == ("Dev Eloper", "dev@example.test")
        tracked = {item.path for item in head.tree.traverse()}  # type: ignore[union-attr]
    for service in ("web", "api", "stock"):
        for name in ("app.py", "Dockerfile", "requirements.txt"):
            assert f"services/{service}/{name}" in tracked
    assert {"devmesh.yaml", "README.md"} <= tracked

    project = load_project(dest / "devmesh.yaml")
    assert project.app == "shop"
    assert list(project.services) == ["web", "api", "stock"]
    assert project.entry_service == "web"
    assert all(svc.build_args == {} for svc in project.services.values())
    assert project.port_of("stock") == 8000


def test_starter_goes_into_an_existing_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "empty"
    dest.mkdir()
    code, _, err = run(capsys, "init", "--starter", "shop", str(dest))
    assert code == 0, err
    assert (dest / ".git").is_dir() and (dest / "services/web/app.py").is_file()


def test_starter_commits_as_devmesh_when_git_has_no_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(key, raising=False)
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")

    dest = tmp_path / "shop"
    code, out, err = run(capsys, "init", "--starter", "shop", str(dest))
    assert code == 0, err
    with gitpython.Repo(dest) as repo:
        head = repo.head.commit
        assert (head.author.name, head.author.email) == FALLBACK_AUTHOR
        assert (head.committer.name, head.committer.email) == FALLBACK_AUTHOR
    assert "devmesh <devmesh@localhost>" in out


def test_starter_with_base_image_passes_it_to_every_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "shop"
    code, _, err = run(capsys, "init", "--starter", "shop", str(dest), "--base-image", "devmesh/python-base:bookworm")
    assert code == 0, err
    project = load_project(dest / "devmesh.yaml")
    for svc in project.services.values():
        assert svc.build_args == {"BASE_IMAGE": "devmesh/python-base:bookworm"}
    text = (dest / "devmesh.yaml").read_text()
    assert "# the preview URL leads here" in text  # comments survive the edit
    for service in ("web", "api", "stock"):
        dockerfile = (dest / f"services/{service}/Dockerfile").read_text()
        assert "ARG BASE_IMAGE=" in dockerfile and "FROM ${BASE_IMAGE}" in dockerfile
    with gitpython.Repo(dest) as repo:
        assert not repo.is_dirty(untracked_files=True)  # the edited file is in the first commit


def test_starter_refuses_a_non_empty_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine\n")
    code, out, err = run(capsys, "init", "--starter", "shop", str(dest))
    assert code == 2
    assert "not empty" in err and str(dest) in err
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]


def test_unknown_starter_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", "--starter", "bakery", str(tmp_path / "x"))
    assert code == 2
    assert "unknown starter 'bakery'" in err and "shop" in err
    assert not (tmp_path / "x").exists()


def test_base_image_without_starter_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "init", str(tmp_path), "--base-image", "x")
    assert code == 2
    assert "--starter" in err


# --- scanning an existing repository ----------------------------------------------------


def _repo(root: Path, files: dict[str, str]) -> Path:
    write_files(root, files)
    git(root, "init", "-q", "-b", "main")
    return root


def test_scan_finds_dockerfiles_ports_and_presets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _repo(tmp_path / "Acme_Shop", {
        "services/api/Dockerfile": "FROM python:3.12\nWORKDIR /srv\nCOPY . .\nEXPOSE 9000/tcp\n",
        "services/api/requirements.txt": "",
        "services/worker/Dockerfile": "FROM alpine\n",
        "services/worker/pyproject.toml": "[project]\nname='w'\n",
        "frontend/Dockerfile": "FROM node:22\nEXPOSE 3000\n",
        "frontend/package.json": "{}\n",
        "tools/Dockerfile": "FROM busybox\n",
        # Never services: dependencies, virtualenvs, hidden folders.
        "frontend/node_modules/some-pkg/Dockerfile": "FROM node\n",
        "venv/pyvenv.cfg": "home = /usr/bin\n",
        "venv/lib/pkg/Dockerfile": "FROM python\n",
        ".devcontainer/Dockerfile": "FROM debian\n",
    })
    code, out, err = run(capsys, "init", str(root))
    assert code == 0, err

    project = load_project(root / "devmesh.yaml")
    assert project.app == "acme-shop"
    assert sorted(project.services) == ["api", "frontend", "tools", "worker"]
    contexts = {name: svc.context for name, svc in project.services.items()}
    assert contexts == {"api": "services/api", "frontend": "frontend", "tools": "tools", "worker": "services/worker"}
    ports = {name: project.port_of(name) for name in project.services}
    assert ports == {"api": 9000, "frontend": 3000, "tools": 8080, "worker": 8080}
    presets = {name: svc.preset for name, svc in project.services.items()}
    assert presets == {"api": "python-web", "frontend": "node-web", "tools": "container", "worker": "python-web"}
    assert project.entry_service == "frontend"
    assert project.services["api"].sync is None  # read from the Dockerfile when syncing

    text = (root / "devmesh.yaml").read_text()
    assert "  # synced, as its COPY places them: . → /srv (services/api/Dockerfile:3)" in text

    text = (root / "devmesh.yaml").read_text()
    assert "# services/api/Dockerfile: port 9000 (EXPOSE), preset python-web (requirements.txt)" in text
    assert "port 8080 (no EXPOSE: a guess)" in text
    assert "x-devmesh-env" in out and "frontend" in out


def test_scan_of_a_single_dockerfile_at_the_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _repo(tmp_path / "solo", {"Dockerfile": "FROM node\nEXPOSE 3000\n", "package.json": "{}"})
    code, _, err = run(capsys, "init", str(root))
    assert code == 0, err
    project = load_project(root / "devmesh.yaml")
    assert list(project.services) == ["solo"]
    assert project.services["solo"].context == "."
    assert project.entry_service == "solo"


def test_scan_in_the_current_directory_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _repo(tmp_path / "here", {"api/Dockerfile": "FROM x\n", "web/Dockerfile": "FROM x\n"})
    monkeypatch.chdir(root)
    code, _, err = run(capsys, "init")
    assert code == 0, err
    assert load_project(root / "devmesh.yaml").entry_service == "web"


def test_scan_never_overwrites_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _repo(tmp_path / "app", {"api/Dockerfile": "FROM x\n", "devmesh.yaml": "# mine\n"})
    code, _, err = run(capsys, "init", str(root))
    assert code == 2
    assert "already exists" in err and "--force" in err
    assert (root / "devmesh.yaml").read_text() == "# mine\n"

    code, _, err = run(capsys, "init", "--force", str(root))
    assert code == 0, err
    assert list(load_project(root / "devmesh.yaml").services) == ["api"]


def test_scan_without_any_dockerfile_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _repo(tmp_path / "empty", {"README.md": "hi\n", "node_modules/x/Dockerfile": "FROM x\n"})
    code, _, err = run(capsys, "init", str(root))
    assert code == 2
    assert "no Dockerfile found" in err
    assert not (root / "devmesh.yaml").exists()


def test_scan_notes_a_directory_outside_git(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_files(tmp_path / "plain", {"api/Dockerfile": "FROM x\n"})
    code, out, err = run(capsys, "init", str(tmp_path / "plain"))
    assert code == 0, err
    assert "not in a git repository" in out


def test_names_become_unique_dns_labels_that_yaml_reads_as_strings(tmp_path: Path) -> None:
    write_files(tmp_path, {
        "a/My_Service/Dockerfile": "FROM x\n",
        "b/my-service/Dockerfile": "FROM x\n",
        "null/Dockerfile": "FROM x\n",
        "8080/Dockerfile": "FROM x\n",
    })
    guesses = scan(tmp_path)
    assert sorted(g.name for g in guesses) == ["my-service", "my-service-2", "null", "svc-8080"]
    from devmesh.scaffold import init_repository

    init_repository(tmp_path)
    assert sorted(load_project(tmp_path / "devmesh.yaml").services) == ["my-service", "my-service-2", "null", "svc-8080"]


@pytest.mark.parametrize(("text", "label"), [
    ("My_API", "my-api"), ("--x--", "x"), ("Café Bar", "cafe-bar"), ("___", "svc"), ("a" * 40, "a" * 30), ("2fa", "svc-2fa"),
])
def test_dns_label(text: str, label: str) -> None:
    assert dns_label(text, 30) == label


@pytest.mark.parametrize(("dockerfile", "port"), [
    ("FROM x\nEXPOSE 80 443\n", 80),
    ("FROM x\nexpose 5000/udp\n", 5000),
    ("FROM x\nEXPOSE \\\n    7000\n", 7000),
    ("FROM x AS build\nEXPOSE 1111\nFROM y\nEXPOSE 2222\n", 2222),  # the final stage runs
    ("FROM x AS build\nEXPOSE 1111\nFROM y\n", None),
    ("FROM x\nEXPOSE ${PORT}\n", None),
    ("FROM x\n# EXPOSE 9\n", None),
])
def test_exposed_port(tmp_path: Path, dockerfile: str, port: int | None) -> None:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    assert exposed_port(tmp_path / "Dockerfile") == port


def test_init_manifests_records_the_repo_and_keeps_comments(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from devmesh.cli import cli
    from devmesh.config import load_project

    runner = CliRunner()
    target = tmp_path / "shop"
    done = runner.invoke(cli, ["init", "--starter", "shop", str(target)])
    assert done.exit_code == 0, done.output
    done = runner.invoke(cli, ["init", str(target), "--manifests", "../shop-manifests"])
    assert done.exit_code == 0, done.output
    text = (target / "devmesh.yaml").read_text()
    assert "# devmesh.yaml for the shop starter" in text
    assert load_project(target / "devmesh.yaml").manifests.repo == "../shop-manifests"  # type: ignore[union-attr]
    again = runner.invoke(cli, ["init", str(target), "--manifests", "../shop-manifests"])
    assert again.exit_code == 0 and "already set" in again.output


# --- reading the Dockerfiles: presets, sync, the entry ------------------------------------------

PLAIN = "FROM python:3.12-slim\nCOPY {file} /srv/{file}\nEXPOSE {port}\nCMD [\"python3\", \"/srv/{file}\"]\n"


def test_plain_servers_get_the_python_preset_their_copies_and_the_caller_as_entry(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _repo(tmp_path / "plain", {
        # alphabetically first, but called by the others: not the entry
        "accounts/Dockerfile": PLAIN.format(file="accounts.py", port=8001),
        "accounts/accounts.py": "print('accounts')\n",
        "catalog/Dockerfile": PLAIN.format(file="catalog.py", port=8002),
        "catalog/catalog.py": "ACCOUNTS = os.environ.get('ACCOUNTS_URL', 'http://accounts:8001')\n",
        "storefront/Dockerfile": PLAIN.format(file="shop.py", port=8000),
        "storefront/shop.py": "CATALOG = 'http://catalog:8002/items'\nACCOUNTS = 'http://accounts:8001'\n"
                              "# the /api/catalog page (a path, not an address)\n",
    })
    code, out, err = run(capsys, "init", str(root))
    assert code == 0, err
    project = load_project(root / "devmesh.yaml")
    assert project.entry_service == "storefront"
    assert {n: s.preset for n, s in project.services.items()} == {
        "accounts": "python-web", "catalog": "python-web", "storefront": "python-web"}
    assert all(s.sync is None for s in project.services.values())
    assert "entry: no other service calls it, and it calls accounts, catalog" in out
    assert "preset: the command runs python3 (python3 /srv/shop.py)" in out
    assert "sync: shop.py → /srv/shop.py (storefront/Dockerfile:2)" in out
    text = (root / "devmesh.yaml").read_text()
    assert "entry: true  # the service behind the preview URL: no other service calls it" in text


def test_without_calls_the_entry_falls_back_to_names_then_ports(tmp_path: Path) -> None:
    write_files(tmp_path, {"a/Dockerfile": "FROM x\nEXPOSE 9000\n", "b/Dockerfile": "FROM x\nEXPOSE 80\n",
                           "web/Dockerfile": "FROM x\nEXPOSE 7000\n"})
    entry = next(g for g in scan(tmp_path) if g.entry)
    assert (entry.name, entry.entry_reason) == ("web", "named web (no single service calls the others)")
    (tmp_path / "web/Dockerfile").unlink()
    (tmp_path / "web").rmdir()
    entry = next(g for g in scan(tmp_path) if g.entry)
    assert (entry.name, entry.entry_reason) == ("b", "listens on port 80")


def test_a_compiled_service_gets_the_container_preset(tmp_path: Path) -> None:
    write_files(tmp_path, {"svc/Dockerfile": (
        "FROM golang AS build\nCOPY . /src\nRUN go build -o /bin/svc /src\n"
        "FROM debian\nCOPY --from=build /bin/svc /bin/svc\nENTRYPOINT [\"/bin/svc\"]\n"), "svc/main.go": ""})
    (guess,) = scan(tmp_path)
    assert (guess.preset, guess.preset_reason) == ("container", "the command runs /bin/svc, built in another stage")


def test_a_dockerfile_init_cannot_read_stops_it_writing_anything(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = _repo(tmp_path / "broken", {"api/Dockerfile": "FROM x\nCOPY . /app\n", "web/Dockerfile": "FROM x\nWORKDIR \"/app\n"})
    code, _, err = run(capsys, "init", str(root))
    assert code == 2
    assert err.splitlines()[0] == "error: web/Dockerfile:2: unmatched \" in '\"/app'"
    assert not (root / "devmesh.yaml").exists()
