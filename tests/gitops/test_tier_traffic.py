"""A service's traffic file in a tier: rendered from the route plan (with a candidate version
and its strategy, or without), read back, and a hand edit of what devmesh renders refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from devmesh.config import Project, load_project
from devmesh.errors import UserInputError
from devmesh.gitops.managed import RENDERED
from devmesh.gitops.tier_traffic import (
    CANDIDATE,
    STRATEGY_ANNOTATION,
    TierTraffic,
    TrafficEdited,
    TrafficStale,
    inspect,
    read,
    render,
)
from devmesh.gitops.yamlio import write_documents
from devmesh.plan.strategy import Canary, Mirror, Switch
from tests.gitops.gitops_helpers import digest_ref, write_project

CANDIDATE_IMAGE = digest_ref("c")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return load_project(write_project(tmp_path / "shop", None))


def _write(tmp_path: Path, project: Project, state: TierTraffic) -> Path:
    header, docs = render(project, "prod", "api", state)
    path = tmp_path / "tiers" / "prod" / "traffic" / "api.yaml"
    write_documents(path, docs, header)
    return path


def test_without_a_strategy_the_file_is_the_routes_to_the_tiers_version(project: Project) -> None:
    header, docs = render(project, "prod", "api")
    assert header.startswith("# Service 'api' in tier 'prod'")
    assert [d["kind"] for d in docs] == ["DestinationRule", "VirtualService"]
    assert [s["name"] for s in docs[0]["spec"]["subsets"]] == ["baseline"]
    assert list(docs[1]["metadata"]["annotations"]) == [RENDERED]  # the fingerprint only: no strategy


@pytest.mark.parametrize("strategy", [Canary("api", CANDIDATE, 20), Canary("api", CANDIDATE, 10, "x-user"),
                                      Mirror("api", CANDIDATE, 50.0), Switch("api", CANDIDATE)],
                         ids=["canary", "sticky-canary", "mirror", "switch"])
def test_a_strategy_brings_the_candidate_version_and_its_split(project: Project, strategy: object,
                                                               tmp_path: Path) -> None:
    state = TierTraffic(CANDIDATE_IMAGE, strategy)  # type: ignore[arg-type]
    _, docs = render(project, "prod", "api", state)
    rules, routes, candidate = docs
    assert [s["name"] for s in rules["spec"]["subsets"]] == ["baseline", CANDIDATE]
    assert candidate["kind"] == "Deployment" and candidate["metadata"]["name"] == "api-candidate"
    pods = candidate["spec"]["template"]
    assert pods["metadata"]["labels"]["devmesh.dev/env"] == CANDIDATE
    assert candidate["spec"]["selector"]["matchLabels"]["devmesh.dev/env"] == CANDIDATE
    assert pods["spec"]["containers"][0]["image"] == str(CANDIDATE_IMAGE)
    assert pods["spec"]["containers"][0]["env"] == [{"name": "MODE", "value": "dev"}]
    assert STRATEGY_ANNOTATION in routes["metadata"]["annotations"]
    # It reads back as what was written.
    path = _write(tmp_path, project, state)
    assert read(project, "prod", "api", path, "tiers/prod/traffic/api.yaml") == state


def test_a_canarys_split_is_the_weights_of_the_routes(project: Project) -> None:
    _, docs = render(project, "prod", "api", TierTraffic(CANDIDATE_IMAGE, Canary("api", CANDIDATE, 20)))
    rules = {r["name"]: r for r in docs[1]["spec"]["http"]}
    weights = {d["destination"]["subset"]: d["weight"] for d in rules["api-canary"]["route"]}
    assert weights == {"baseline": 80, CANDIDATE: 20}
    # The header still reaches the candidate alone; what is left goes to the tier's version.
    assert rules["api-candidate"]["match"] == [{"headers": {"x-devmesh-env": {"exact": CANDIDATE}}}]
    assert [d["destination"]["subset"] for d in rules["api-baseline"]["route"]] == ["baseline"]


def test_a_file_without_a_strategy_reads_back_as_nothing_beside_the_base(project: Project, tmp_path: Path) -> None:
    path = _write(tmp_path, project, TierTraffic())
    assert read(project, "prod", "api", path, "f") == TierTraffic()


@pytest.mark.parametrize(("edit", "says"), [
    (lambda docs: docs[1]["spec"]["http"][-1].__setitem__("timeout", "99s"),
     'f: VirtualService api: spec.http[2].timeout was edited by hand: it is "99s", devmesh.yaml and the '
     "presets give no such field"),
    (lambda docs: docs[0]["spec"]["trafficPolicy"]["connectionPool"]["tcp"].__setitem__("maxConnections", 1)
     if "trafficPolicy" in docs[0]["spec"] else docs[0]["spec"].__setitem__("trafficPolicy", {"x": 1}),
     "f: DestinationRule api: spec.trafficPolicy"),
    (lambda docs: docs.append({"kind": "ConfigMap", "metadata": {"name": "mine"}}),
     "f: ConfigMap mine is not one devmesh writes here"),
    (lambda docs: docs.pop(0), "f: DestinationRule api is missing"),
    (lambda docs: docs[2]["spec"]["template"]["spec"]["containers"][0].__setitem__("image", "shop/api:latest"),
     "f: Deployment api-candidate: 'shop/api:latest' is not pinned by digest"),
])
def test_a_hand_edit_of_what_devmesh_renders_is_refused_naming_the_field(
        project: Project, tmp_path: Path, edit: object, says: str) -> None:
    path = _write(tmp_path, project, TierTraffic(CANDIDATE_IMAGE, Canary("api", CANDIDATE, 20)))
    docs = list(yaml.safe_load_all(path.read_text()))
    edit(docs)  # type: ignore[operator]
    path.write_text(yaml.safe_dump_all(docs))
    with pytest.raises(UserInputError) as refused:
        read(project, "prod", "api", path, "f")
    assert str(refused.value).startswith(says), str(refused.value)


def test_a_file_that_is_not_yaml_names_its_line(project: Project, tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text("kind: VirtualService\nspec: [\n")
    with pytest.raises(UserInputError, match=r"^f:3: not valid YAML"):
        read(project, "prod", "api", path, "f")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (it renders the overlay)")
def test_a_canary_file_passes_the_schemas_and_istioctl_analyze(project: Project, tmp_path: Path,
                                                               istioctl: str) -> None:
    from tests.schemas import analyze, validate

    path = _write(tmp_path, project, TierTraffic(CANDIDATE_IMAGE, Canary("api", CANDIDATE, 30, "x-user")))
    (path.parent.parent / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - traffic/api.yaml\n")
    rendered = subprocess.run(["kubectl", "kustomize", str(path.parent.parent)], capture_output=True,
                              text=True, check=True).stdout
    objects = list(yaml.safe_load_all(rendered))
    for obj in objects:
        validate(obj)
    verdict = analyze(istioctl, objects, tmp_path)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def _with_timeout(tmp_path: Path, timeout: str) -> Project:
    """The same project with api's resilience timeout set in devmesh.yaml."""
    path = write_project(tmp_path / "shop", None)
    text = path.read_text().replace("    entry: true\n", f"    entry: true\n    resilience:\n      timeout: {timeout}\n", 1)
    path.write_text(text)
    return load_project(path)


def test_a_file_devmesh_wrote_that_devmesh_yaml_has_changed_since_is_stale_not_edited(tmp_path: Path) -> None:
    before = _with_timeout(tmp_path, "5s")
    path = _write(tmp_path, before, TierTraffic(CANDIDATE_IMAGE, Canary("api", CANDIDATE, 20)))
    after = _with_timeout(tmp_path, "7s")
    with pytest.raises(TrafficStale) as stale:
        read(after, "prod", "api", path, "f")
    assert "VirtualService api: spec.http[" in str(stale.value) and '"5s"' in str(stale.value)
    assert '"7s" now' in str(stale.value) and "manifests sync" in (stale.value.hint or "")
    state, findings = inspect(after, "prod", "api", path, "f")
    assert state.candidate == CANDIDATE_IMAGE  # the state is still read
    assert {f.verdict.state for f in findings} == {"stale"}


def _with_rate_limit(tmp_path: Path, per_second: int) -> Project:
    path = write_project(tmp_path / "shop", None)
    if per_second:
        text = path.read_text().replace(
            "    entry: true\n",
            f"    entry: true\n    resilience:\n      rate_limit:\n        requests_per_second: {per_second}\n", 1)
        path.write_text(text)
    return load_project(path)


def test_a_rate_limit_set_or_dropped_since_the_file_was_written_is_stale(tmp_path: Path) -> None:
    plain = _with_rate_limit(tmp_path, 0)
    path = _write(tmp_path, plain, TierTraffic())
    limited = _with_rate_limit(tmp_path, 5)
    with pytest.raises(TrafficStale, match="EnvoyFilter api-rate-limit: spec is no such field"):
        read(limited, "prod", "api", path, "f")
    path = _write(tmp_path, limited, TierTraffic(CANDIDATE_IMAGE, Canary("api", CANDIDATE, 20)))
    assert [d["kind"] for d in yaml.safe_load_all(path.read_text())] == [
        "DestinationRule", "VirtualService", "EnvoyFilter", "Deployment"]
    assert read(limited, "prod", "api", path, "f").candidate == CANDIDATE_IMAGE
    state, findings = inspect(plain, "prod", "api", path, "f")
    assert state.candidate == CANDIDATE_IMAGE
    assert [(f.kind, f.verdict.state) for f in findings] == [("EnvoyFilter", "stale")]
    assert "but devmesh.yaml and the presets give no such field now" in str(findings[0].error("f"))


def test_an_edit_on_top_of_a_stale_file_is_still_an_edit(tmp_path: Path) -> None:
    before = _with_timeout(tmp_path, "5s")
    path = _write(tmp_path, before, TierTraffic())
    docs = list(yaml.safe_load_all(path.read_text()))
    docs[0]["spec"]["host"] = "elsewhere"
    path.write_text(yaml.safe_dump_all(docs))
    with pytest.raises(TrafficEdited, match="DestinationRule api: spec.host was edited by hand"):
        read(_with_timeout(tmp_path, "7s"), "prod", "api", path, "f")


def test_a_file_without_fingerprints_is_devmesh_where_it_matches_the_render(project: Project, tmp_path: Path) -> None:
    path = _write(tmp_path, project, TierTraffic())
    docs = list(yaml.safe_load_all(path.read_text()))
    for doc in docs:
        del doc["metadata"]["annotations"][RENDERED]
        if not doc["metadata"]["annotations"]:
            del doc["metadata"]["annotations"]
    path.write_text(yaml.safe_dump_all(docs))
    assert read(project, "prod", "api", path, "f") == TierTraffic()
    docs[1]["spec"]["hosts"] = ["other"]
    path.write_text(yaml.safe_dump_all(docs))
    with pytest.raises(TrafficEdited, match="spec.hosts"):
        read(project, "prod", "api", path, "f")
