"""manifests init, the Kustomize layout, in-place YAML edits and where the repo is configured."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devmesh.config import load_project
from devmesh.errors import UserInputError
from devmesh.gitops import record_manifests
from devmesh.gitops.cache import open_checkout
from devmesh.gitops.promote import PromotionRequest, promote
from devmesh.gitops.scaffold import parse_tiers, scaffold, specs_from_project
from devmesh.gitops.settings import ManifestSettings, manifest_settings
from tests.gitops.gitops_helpers import digest_ref, git, log_subjects, pin_of, write_project


BASE_FILES = ("deployment.yaml", "kustomization.yaml", "service.yaml")


def test_init_on_an_empty_repo_writes_the_layout_as_one_commit(settings: ManifestSettings, project_file: Path, remote: Path) -> None:
    with open_checkout(settings) as co:
        assert co.tip is None
        result = scaffold(co, "shop", specs_from_project(load_project(project_file)), ["dev", "beta", "prod"])
    assert result.created and result.added_services == ["api", "web", "worker"]
    assert log_subjects(remote) == ["manifests: lay out shop with tiers dev, beta, prod"]
    files = sorted(git(remote, "ls-tree", "-r", "--name-only", "main").split())
    assert files == sorted(
        ["tiers.yaml"]
        + [f"base/{s}/{f}" for s in ("api", "web", "worker") for f in BASE_FILES]
        + [f"tiers/{t}/{f}" for t in ("dev", "beta", "prod")
           for f in ("kustomization.yaml", "traffic/api.yaml", "traffic/web.yaml", "traffic/worker.yaml")]
    )
    tiers = yaml.safe_load(git(remote, "show", "main:tiers.yaml"))
    assert tiers == {"app": "shop", "tiers": [{"name": "dev"}, {"name": "beta"}, {"name": "prod"}]}


def test_base_manifests_are_valid_kubernetes_objects_with_devmesh_labels(laid_out: ManifestSettings, remote: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = [yaml.safe_load(git(remote, "show", f"main:base/api/{f}")) for f in ("deployment.yaml", "service.yaml")]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.34", strict=True)
        assert doc["metadata"]["labels"] == {
            "app.kubernetes.io/managed-by": "devmesh",
            "devmesh.dev/app": "shop",
            "devmesh.dev/service": "api",
        }
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 8000
    assert container["env"] == [{"name": "MODE", "value": "dev"}]
    assert container["image"] == "shop/api"


def test_presets_give_the_container_port(tmp_path: Path, remote: Path) -> None:
    root = tmp_path / "p"
    (root / "svc").mkdir(parents=True)
    (root / "svc" / "Dockerfile").write_text("FROM scratch\n")
    (root / "devmesh.yaml").write_text(f"app: shop\nservices:\n  svc:\n    context: svc\n    preset: python-web\nmanifests:\n  repo: {remote}\n")
    project = load_project(root / "devmesh.yaml")
    with open_checkout(manifest_settings(project)) as co:
        scaffold(co, "shop", specs_from_project(project))
    deployment = yaml.safe_load(git(remote, "show", "main:base/svc/deployment.yaml"))
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 8000
    assert "dev" in git(remote, "show", "main:tiers.yaml")  # default tiers dev, beta, prod


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (it renders the overlay)")
def test_kubectl_kustomize_renders_a_tier_with_the_pinned_digest(checkout: Any, tmp_path: Path) -> None:
    image = digest_ref("a")
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", image))
        rendered = subprocess.run(
            ["kubectl", "kustomize", str(co.layout().tier_file("dev").parent)],
            capture_output=True, text=True, check=True,
        ).stdout
    objects = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(rendered)}
    assert set(objects) == {(k, s) for k in ("Deployment", "Service", "DestinationRule", "VirtualService")
                            for s in ("api", "web", "worker")}
    containers = {name: objects[("Deployment", name)]["spec"]["template"]["spec"]["containers"][0] for name in ("api", "web")}
    assert containers["api"]["image"] == str(image)
    assert containers["web"]["image"] == "shop/web"  # not promoted yet: the base placeholder


def test_a_promotion_keeps_comments_order_and_indentation(checkout: Any, remote: Path, tmp_path: Path) -> None:
    hand_written = (
        "# beta: owned by the payments team\n"
        "kind: Kustomization\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1   # order kept on purpose\n"
        "resources:\n"
        "- ../../base/api   # api first\n"
        "- ../../base/web\n"
        "- ../../base/worker\n"
        "images:\n"
        "# web is pinned by hand during the migration\n"
        "- name: shop/web\n"
        "  newName: registry.example/shop/web\n"
        "  digest: sha256:" + "c" * 64 + "  # do not touch\n"
        "- name: shop/api\n"
        "  newName: old.example/shop/api\n"
        "  newTag: '1.0'\n"
        "  digest: sha256:" + "d" * 64 + "\n"
    )
    work = tmp_path / "human"
    git(tmp_path, "clone", "--quiet", str(remote), str(work))
    (work / "tiers/dev/kustomization.yaml").write_text(hand_written)
    git(work, "commit", "--quiet", "-am", "hand edit")
    git(work, "push", "--quiet", "origin", "main")
    with checkout() as co:
        promote(co, PromotionRequest("api", "dev", digest_ref("a")))
        assert pin_of(co, "dev", "web") == digest_ref("c", "registry.example/shop/web")
    after = git(remote, "show", "main:tiers/dev/kustomization.yaml")
    expected = hand_written.replace("old.example/shop/api", "127.0.0.1:5001/shop/api").replace("d" * 64, "a" * 64)
    expected = expected.replace("  newTag: '1.0'\n", "")
    assert after == expected
    changed = git(remote, "show", "--format=", "--name-only", "main").split()
    assert changed == ["tiers/dev/kustomization.yaml"]


def test_init_again_adds_new_services_and_is_otherwise_a_no_op(laid_out: ManifestSettings, tmp_path: Path, remote: Path) -> None:
    bigger = load_project(write_project(tmp_path / "shop2", str(remote), ("api", "web", "worker", "cart")))
    with open_checkout(laid_out) as co:
        result = scaffold(co, "shop", specs_from_project(bigger))
    assert result.added_services == ["cart"] and not result.created
    assert "../../base/cart" in yaml.safe_load(git(remote, "show", "main:tiers/prod/kustomization.yaml"))["resources"]
    before = log_subjects(remote)
    with open_checkout(laid_out) as co:
        again = scaffold(co, "shop", specs_from_project(bigger))
    assert again.landed.unchanged and log_subjects(remote) == before


def test_init_refuses_other_tiers_on_an_existing_layout(laid_out: ManifestSettings, project_file: Path) -> None:
    with open_checkout(laid_out) as co, pytest.raises(UserInputError, match="already has tiers dev, beta, prod"):
        scaffold(co, "shop", specs_from_project(load_project(project_file)), ["dev", "prod"])


def test_init_starts_a_missing_branch_under_a_path(tmp_path: Path, remote: Path, project_file: Path) -> None:
    settings = ManifestSettings(url=str(remote), path="apps/shop", branch="gitops")
    with open_checkout(settings) as co:
        scaffold(co, "shop", specs_from_project(load_project(project_file)), ["dev", "prod"])
    assert "apps/shop/tiers/prod/kustomization.yaml" in git(remote, "ls-tree", "-r", "--name-only", "gitops")


@pytest.mark.parametrize("text", ["", "dev,,dev", "Dev", "dev,beta prod"])
def test_bad_tier_lists_are_refused(text: str) -> None:
    with pytest.raises(UserInputError):
        parse_tiers(text)


def test_record_manifests_keeps_comments_and_other_fields(tmp_path: Path) -> None:
    config = tmp_path / "devmesh.yaml"
    config.write_text(
        "# shop\napp: shop   # the app\nservices:\n  api:\n    port: 80\n"
        "manifests:\n  # where promotions go\n  path: apps/shop\n  branch: gitops\n"
    )
    assert record_manifests(config, "git@example.test:team/manifests.git")
    text = config.read_text()
    assert text.startswith("# shop\napp: shop   # the app\n")
    assert "  # where promotions go\n" in text
    data = yaml.safe_load(text)
    assert data["manifests"] == {"repo": "git@example.test:team/manifests.git", "path": "apps/shop", "branch": "gitops"}
    assert not record_manifests(config, "git@example.test:team/manifests.git")


def test_record_manifests_adds_the_section(tmp_path: Path) -> None:
    config = tmp_path / "devmesh.yaml"
    config.write_text("app: shop\nservices:\n  api:\n    port: 80\n")
    record_manifests(config, "../manifests")
    assert config.read_text().endswith("manifests:\n  repo: ../manifests\n")


def test_environment_variable_overrides_the_configured_repo(project_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = load_project(project_file)
    monkeypatch.chdir(tmp_path)
    settings = manifest_settings(project, {"DEVMESH_MANIFESTS": "other.git"})
    assert settings.url == str(tmp_path / "other.git")
    assert manifest_settings(project, {}).url == str(tmp_path / "manifests.git")
    assert manifest_settings(None, {"DEVMESH_MANIFESTS": "https://example.test/m.git"}).url == "https://example.test/m.git"
    with pytest.raises(UserInputError, match="no manifest repo configured"):
        manifest_settings(None, {})


def test_re_pinning_rewrites_only_the_two_values() -> None:
    from devmesh.gitops.layout import splice_pin

    text = (
        "images:   # pins\n"
        "  - name: shop/web\n"
        "    digest: \"sha256:" + "1" * 64 + "\"   # quoted, with a comment\n"
        "    newName: 'r.example/shop/web'\n"
        "  - {name: shop/api, newName: x/api, digest: 'sha256:" + "2" * 64 + "'}\n"
        "# über-comment, not ASCII\n"
    )
    out = splice_pin(text, "shop/web", digest_ref("a", "127.0.0.1:5001/shop/web"))
    assert out == (
        text.replace("1" * 64, "a" * 64).replace("r.example/shop/web", "127.0.0.1:5001/shop/web")
    )
    flow = splice_pin(text, "shop/api", digest_ref("a"))  # a flow-style entry is edited in place too
    assert flow == text.replace("x/api", "127.0.0.1:5001/shop/api").replace("2" * 64, "a" * 64)
    assert splice_pin(text, "shop/worker", digest_ref("a")) is None  # no entry yet


def test_adding_and_removing_pins_keeps_the_rest(checkout: Any, remote: Path) -> None:
    with checkout() as co:
        layout = co.layout()
        path = layout.tier_file("dev")
        path.write_text(path.read_text().replace("resources:", "# the services\nresources:"))
        layout.set_pin("dev", "shop", "web", digest_ref("1", "r/web"))
        layout.set_pin("dev", "shop", "api", digest_ref("2", "r/api"))
        layout.set_pin("dev", "shop", "web", None)
        assert layout.pins("dev", "shop") == {"api": digest_ref("2", "r/api")}
        assert "# the services\nresources:\n  - ../../base/api\n" in path.read_text()
        layout.set_pin("dev", "shop", "api", None)
        assert "\nimages:" not in path.read_text()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (it renders the overlay)")
def test_a_tier_carries_each_services_traffic_with_its_presets_resilience(
        tmp_path: Path, remote: Path, istioctl: str) -> None:
    """`kubectl kustomize tiers/<tier>` yields the routes too: per service a DestinationRule whose
    subset is the tier's version (the Deployment's pods) with the preset's connection limits and
    outlier detection, and a VirtualService with its timeout and retries — the same rendering
    as the kind runtime's, with short hosts for whichever namespace the tier is applied to —
    valid for Kubernetes' and Istio's schemas and for istioctl analyze."""
    from tests.schemas import analyze, validate

    root = tmp_path / "p"
    (root / "svc").mkdir(parents=True)
    (root / "svc" / "Dockerfile").write_text("FROM scratch\n")
    (root / "devmesh.yaml").write_text(
        "app: shop\nservices:\n  svc:\n    context: svc\n    preset: python-web\n"
        "    values: {timeout: 7s, retries: 3}\n"
        f"manifests:\n  repo: {remote}\n")
    project = load_project(root / "devmesh.yaml")
    with open_checkout(manifest_settings(project)) as co:
        scaffold(co, "shop", specs_from_project(project))
        rendered = subprocess.run(["kubectl", "kustomize", str(co.layout().tier_file("prod").parent)],
                                  capture_output=True, text=True, check=True).stdout
    objects = list(yaml.safe_load_all(rendered))
    by_kind = {d["kind"]: d for d in objects}
    assert set(by_kind) == {"Deployment", "Service", "DestinationRule", "VirtualService"}
    pod_labels = by_kind["Deployment"]["spec"]["template"]["metadata"]["labels"]
    rule = by_kind["DestinationRule"]["spec"]
    assert rule["host"] == "svc" and "namespace" not in by_kind["DestinationRule"]["metadata"]
    [subset] = rule["subsets"]
    assert subset == {"name": "baseline", "labels": {"devmesh.dev/env": "baseline"}}
    assert pod_labels["devmesh.dev/env"] == "baseline"
    assert rule["trafficPolicy"]["connectionPool"]["tcp"] == {"maxConnections": 1024}
    assert rule["trafficPolicy"]["outlierDetection"]["consecutive5xxErrors"] == 5
    [route] = by_kind["VirtualService"]["spec"]["http"]
    assert by_kind["VirtualService"]["spec"]["hosts"] == ["svc"]
    assert route["route"] == [{"destination": {"host": "svc", "subset": "baseline", "port": {"number": 8000}}}]
    assert route["timeout"] == "7s"
    assert route["retries"] == {"attempts": 3, "retryOn": "connect-failure,refused-stream"}
    for obj in objects:
        assert obj["metadata"]["labels"]["devmesh.dev/service"] == "svc"
        validate(obj)
    verdict = analyze(istioctl, objects, tmp_path)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
