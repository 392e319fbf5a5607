"""`devmesh render`: pure, schema-valid, routes the changed service by header and preview host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devmesh.cli import main
from devmesh.naming import HASH_LEN
from tests.conftest import ProjectFactory, git
from tests.schemas import validate


def _render(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    with pytest.raises(SystemExit) as done:
        main(["-c", str(root / "devmesh.yaml"), "render", *args])
        raise SystemExit(0)
    out = capsys.readouterr()
    assert done.value.code == 0, out.err
    return [doc for doc in yaml.safe_load_all(out.out) if doc]


def _by(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _change_api(root: Path) -> None:
    git(root, "checkout", "-q", "-b", "feature/cheaper-stock")
    (root / "services/api/app.py").write_text('print("cheaper")\n')
    git(root, "commit", "-qam", "api: cheaper")


def test_branch_changing_api_routes_api_by_header_and_host(make_project: ProjectFactory,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    _change_api(root)
    objects = _render(root, capsys)
    env = _env_of(objects)
    assert env.startswith("feature-cheaper-stock-")
    for obj in objects:
        validate(obj)
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "devmesh"
        assert labels["devmesh.dev/app"] == "shop"
        assert "devmesh.dev/env" in labels and "devmesh.dev/service" in labels

    deployments = _by(objects, "Deployment")
    assert set(deployments) == {"web-baseline", "api-baseline", "stock-baseline", f"api-{env}"}
    assert deployments[f"api-{env}"]["metadata"]["labels"]["devmesh.dev/env"] == env

    vs = _by(objects, "VirtualService")
    api_routes = vs["api"]["spec"]["http"]
    assert api_routes[0]["match"] == [{"headers": {"x-devmesh-env": {"exact": env}}}]
    assert api_routes[0]["route"][0]["destination"]["subset"] == env
    assert "match" not in api_routes[-1]
    assert api_routes[-1]["route"][0]["destination"]["subset"] == "baseline"
    for untouched in ("web", "stock"):
        routes = vs[untouched]["spec"]["http"]
        assert len(routes) == 1 and routes[0]["route"][0]["destination"]["subset"] == "baseline"

    preview = vs[f"shop-gateway-{env}"]["spec"]
    assert preview["hosts"] == [f"{env}.shop.localhost"]
    (route,) = preview["http"]
    assert route["headers"] == {"request": {"set": {"x-devmesh-env": env}}}
    # web is not forked: the preview host enters through the baseline web, which forwards the header.
    assert route["route"][0]["destination"]["subset"] == "baseline"

    subsets = {s["name"] for s in _by(objects, "DestinationRule")["api"]["spec"]["subsets"]}
    assert subsets == {"baseline", env}
    assert _by(objects, "Gateway")["shop-gateway"]["spec"]["servers"][0]["hosts"] == [
        "shop.localhost", "*.shop.localhost"]


def _env_of(objects: list[dict[str, Any]]) -> str:
    envs = {o["metadata"]["labels"]["devmesh.dev/env"] for o in objects} - {"baseline"}
    (env,) = envs
    return env


def test_env_name_for_slashed_branch_has_hash_suffix(make_project: ProjectFactory,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    _change_api(root)
    env = _env_of(_render(root, capsys))
    assert env.startswith("feature-cheaper-stock-") and len(env) == len("feature-cheaper-stock-") + HASH_LEN


def test_uncommitted_and_untracked_changes_count(make_project: ProjectFactory,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    git(root, "checkout", "-q", "-b", "wip")
    (root / "services/stock/new_file.py").write_text("x = 1\n")  # untracked
    (root / "services/web/app.py").write_text('print("edited")\n')  # unstaged
    deployments = _by(_render(root, capsys), "Deployment")
    assert set(deployments) == {"web-baseline", "api-baseline", "stock-baseline", "web-wip", "stock-wip"}


def test_entry_fork_takes_the_preview_host(make_project: ProjectFactory,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    git(root, "checkout", "-q", "-b", "web-change")
    (root / "services/web/app.py").write_text('print("new")\n')
    vs = _by(_render(root, capsys), "VirtualService")
    (route,) = vs["shop-gateway-web-change"]["spec"]["http"]
    assert route["route"][0]["destination"]["subset"] == "web-change"
    base = vs["shop-gateway-baseline"]["spec"]["http"]
    assert base[0]["match"] == [{"headers": {"x-devmesh-env": {"exact": "web-change"}}}]
    assert base[-1]["route"][0]["destination"]["subset"] == "baseline"


def test_all_forks_every_service_and_other_branch_by_name(make_project: ProjectFactory,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    git(root, "branch", "review")
    deployments = _by(_render(root, capsys, "--branch", "review", "--all"), "Deployment")
    assert {n for n in deployments if n.endswith("-review")} == {"web-review", "api-review", "stock-review"}


def test_baseline_branch_renders_baseline_only(make_project: ProjectFactory,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    objects = _render(root, capsys)
    assert {o["metadata"]["labels"]["devmesh.dev/env"] for o in objects} == {"baseline"}
    for obj in objects:
        validate(obj)


def test_dockerfile_outside_context_counts(make_project: ProjectFactory,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    config = ("app: shop\nbaseline: main\nservices:\n  web:\n    context: services/web\n"
              "    dockerfile: ../../docker/web.Dockerfile\n    port: 8000\n")
    root = make_project(config=config, services=("web",), extra={"docker/web.Dockerfile": "FROM x\n"})
    git(root, "checkout", "-q", "-b", "dockerfile-only")
    (root / "docker/web.Dockerfile").write_text("FROM y\n")
    assert "web-dockerfile-only" in _by(_render(root, capsys), "Deployment")


def test_unknown_branch_and_not_a_repo(make_project: ProjectFactory, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    with pytest.raises(SystemExit) as bad:
        main(["-c", str(root / "devmesh.yaml"), "render", "--branch", "nope"])
    assert bad.value.code == 2
    assert "no branch named 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["-c", str(root / "devmesh.yaml"), "render", "--branch", "a..b"])
    assert bad.value.code == 2
    assert "contains '..'" in capsys.readouterr().err
    plain = tmp_path / "plain"
    (plain / "services/web").mkdir(parents=True)
    (plain / "services/web/Dockerfile").write_text("FROM x\n")
    (plain / "devmesh.yaml").write_text("app: shop\nservices:\n  web:\n    context: services/web\n    port: 80\n")
    with pytest.raises(SystemExit) as bad:
        main(["-c", str(plain / "devmesh.yaml"), "render"])
    assert bad.value.code == 2
    assert "not inside a git repository" in capsys.readouterr().err


def test_stored_canary_is_part_of_the_rendered_routes(make_project: ProjectFactory, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from devmesh.plan.strategy import Canary
    from devmesh.routes_state import StrategyStore

    monkeypatch.setenv("DEVMESH_STATE_DIR", str(tmp_path / "state"))
    root = make_project()
    _change_api(root)
    env = _env_of(_render(root, capsys))
    StrategyStore(tmp_path / "state" / "shop").put(Canary("api", env, 20))
    objects = _render(root, capsys)
    for obj in objects:
        validate(obj)
    routes = _by(objects, "VirtualService")["api"]["spec"]["http"]
    weighted = [r for r in routes if len(r.get("route", [])) == 2]
    assert len(weighted) == 1
    assert sorted((d["destination"]["subset"], d["weight"]) for d in weighted[0]["route"]) == [
        ("baseline", 80), (env, 20)]


ROLLING_PRESET = """\
description: Careful rolling update
variables:
  max_surge: {default: 1}
  max_unavailable: {default: 0}
defaults:
  kind: rolling
  max_surge: ${max_surge}
  max_unavailable: ${max_unavailable}
"""


def test_deployments_update_by_the_shipped_rolling_preset(make_project: ProjectFactory,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    objects = _render(make_project(), capsys)
    for deployment in _by(objects, "Deployment").values():
        assert deployment["spec"]["strategy"] == {
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}}


def test_deployments_update_by_the_projects_own_rolling_preset(make_project: ProjectFactory,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(extra={"presets/strategies/rolling.yaml": ROLLING_PRESET})
    _change_api(root)
    objects = _render(root, capsys)
    deployments = _by(objects, "Deployment")
    assert len(deployments) == 4
    for deployment in deployments.values():
        validate(deployment)
        assert deployment["spec"]["strategy"] == {
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_a_rolling_preset_of_another_kind_is_one_line(make_project: ProjectFactory,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project(extra={"presets/strategies/rolling.yaml":
                               "defaults:\n  kind: mirror\n  percent: 5\n"})
    with pytest.raises(SystemExit) as done:
        main(["-c", str(root / "devmesh.yaml"), "render"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert "strategy preset 'rolling' is a mirror preset, not a rolling one" in err
    assert "Traceback" not in err


def _supervised_container(deployment: dict[str, Any]) -> dict[str, Any]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_the_branch_runs_under_the_supervisor_with_the_dockerfiles_command(
        make_project: ProjectFactory, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    (root / "services/api/Dockerfile").write_text(
        'FROM debian:bookworm-slim\nCOPY . /app\nWORKDIR /app\n'
        'ENTRYPOINT ["python3", "-u"]\nCMD ["app.py"]\n')
    git(root, "commit", "-qam", "api: its own command")
    _change_api(root)
    objects = _render(root, capsys)
    for obj in objects:
        validate(obj)
    env = _env_of(objects)
    [configmap] = _by(objects, "ConfigMap").values()
    assert configmap["metadata"]["name"] == "devmesh-supervisor"
    assert configmap["data"]["supervise"].startswith("# devmesh supervisor")
    assert [o["kind"] for o in objects][:2] == ["Namespace", "ConfigMap"]
    deployments = _by(objects, "Deployment")
    container = _supervised_container(deployments[f"api-{env}"])
    assert container["command"] == ["/bin/sh", "/.devmesh/supervise"]
    assert container["args"] == ["python3", "-u", "app.py"]
    assert deployments[f"api-{env}"]["spec"]["template"]["metadata"]["labels"]["devmesh.dev/supervised"] == "1"
    # the shared baseline is never synced: it runs as built
    assert "command" not in _supervised_container(deployments["api-baseline"])


def test_a_command_the_dockerfile_does_not_settle_is_said_in_a_comment(
        make_project: ProjectFactory, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    (root / "services/api/Dockerfile").write_text('FROM node:22\nCOPY . /app\nCMD ["node", "app.js"]\n')
    git(root, "commit", "-qam", "api: node")
    _change_api(root)
    with pytest.raises(SystemExit):
        main(["-c", str(root / "devmesh.yaml"), "render"])
        raise SystemExit(0)
    out = capsys.readouterr().out
    env = _env_of([d for d in yaml.safe_load_all(out) if d])
    # a base image's ENTRYPOINT (node's docker-entrypoint.sh) would run before CMD
    assert (f"# api ({env}) runs without devmesh's supervisor here: its Dockerfile names no "
            "ENTRYPOINT, so its command depends on the base image: 'devmesh up' reads it from "
            "the image it builds") in out.splitlines()
    objects = [d for d in yaml.safe_load_all(out) if d]
    assert "ConfigMap" not in {o["kind"] for o in objects}
    template = _by(objects, "Deployment")[f"api-{env}"]["spec"]["template"]
    assert "command" not in template["spec"]["containers"][0]


def test_a_service_with_sync_off_runs_as_built(make_project: ProjectFactory,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    root = make_project()
    config = yaml.safe_load((root / "devmesh.yaml").read_text())
    config["services"]["api"]["sync"] = []
    (root / "devmesh.yaml").write_text(yaml.safe_dump(config))
    (root / "services/api/Dockerfile").write_text('FROM debian:bookworm-slim\nENTRYPOINT ["python3"]\n')
    git(root, "commit", "-qam", "api: no sync")
    _change_api(root)
    objects = _render(root, capsys)
    env = _env_of(objects)
    template = _by(objects, "Deployment")[f"api-{env}"]["spec"]["template"]
    assert "command" not in template["spec"]["containers"][0]
    assert "annotations" not in template["metadata"]
