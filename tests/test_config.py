"""devmesh.yaml: the bad-config corpus with its exact messages, good configs, and the CLI's
handling of a bad file (exit 2, one line per mistake on stderr, a traceback only with --debug)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devmesh.cli import main
from devmesh.config import ConfigErrors, find_config, load_project, load_text
from devmesh.errors import ConfigError, UserInputError

BAD = Path(__file__).parent / "bad_configs"
REPO = Path(__file__).resolve().parent.parent

# Every file in tests/bad_configs/ and the exact message it must produce. ``{root}`` is the
# fixture directory the file is copied into (as devmesh.yaml).
EXPECTED: dict[str, str] = {
    "01-port-string.yaml":
        'devmesh.yaml:5: services.api.port: expected an integer 1–65535, got "http"',
    "02-port-zero.yaml":
        "devmesh.yaml:5: services.api.port: expected an integer 1–65535, got 0",
    "03-port-too-large.yaml":
        "devmesh.yaml:5: services.api.port: expected an integer 1–65535, got 70000",
    "04-port-bool.yaml":
        "devmesh.yaml:5: services.api.port: expected an integer 1–65535, got true",
    "05-unknown-top-level-key.yaml":
        "devmesh.yaml:2: servics: unknown field; did you mean 'services'?",
    "06-unknown-service-key.yaml":
        "devmesh.yaml:5: services.api.dockerfle: unknown field; did you mean 'dockerfile'?",
    "07-runtime-wrong.yaml":
        'devmesh.yaml:2: runtime: expected one of auto, kind or docker, got "minikube"',
    "08-app-capitals.yaml":
        "devmesh.yaml:1: app: expected an app name: lower-case letters, digits and '-', "
        "starting with a letter, ending with a letter or digit, at most 22 characters, "
        'got "Shop"',
    "09-app-too-long.yaml":
        "devmesh.yaml:1: app: expected an app name: lower-case letters, digits and '-', "
        "starting with a letter, ending with a letter or digit, at most 22 characters, "
        'got "the-very-big-online-shop"',
    "10-service-name-underscore.yaml":
        "devmesh.yaml:3: services.stock_api: expected a service name: lower-case letters, "
        "digits and '-', starting with a letter, ending with a letter or digit, at most 30 "
        'characters, got "stock_api"',
    "11-service-name-digit-first.yaml":
        "devmesh.yaml:3: services.2api: expected a service name: lower-case letters, digits "
        "and '-', starting with a letter, ending with a letter or digit, at most 30 characters, "
        'got "2api"',
    "12-duplicate-key.yaml":
        'devmesh.yaml:6: invalid YAML: duplicate key "port"; each key may appear once',
    "13-yaml-tab.yaml":
        "devmesh.yaml:4: invalid YAML: a tab character where YAML expects spaces; "
        "indent with spaces only",
    "14-yaml-unclosed-bracket.yaml":
        "devmesh.yaml:6: invalid YAML: a '[' list starts here and is never closed",
    "15-empty-file.yaml":
        "devmesh.yaml:1: the file is empty; expected a mapping with 'app' and 'services'",
    "16-top-level-list.yaml":
        "devmesh.yaml:1: expected a mapping at the top level, got a list",
    "17-services-missing.yaml":
        "devmesh.yaml: services: required field is missing; expected a mapping of service "
        "names to their settings",
    "18-services-empty.yaml":
        "devmesh.yaml:2: services: expected at least one service",
    "19-two-entry-services.yaml":
        "devmesh.yaml:10: services.api.entry: only one service can be the entry; "
        "'web' already is",
    "20-no-entry-service.yaml":
        "devmesh.yaml:2: services: no entry service: mark the one behind the preview URL "
        "with 'entry: true'",
    "21-build-context-missing.yaml":
        "devmesh.yaml:4: services.api.context: build context 'services/payments' does not "
        "exist (looked in {root}/services/payments)",
    "22-dockerfile-missing.yaml":
        "devmesh.yaml:5: services.api.dockerfile: Dockerfile 'Dockerfile.dev' not found in "
        "build context 'services/api'",
    "23-sync-dest-relative.yaml":
        "devmesh.yaml:8: services.api.sync[0].dest: expected an absolute path in the "
        'container, got "app/src"',
    "24-sync-src-dotdot.yaml":
        "devmesh.yaml:7: services.api.sync[0].src: expected a path inside the build context "
        "(relative, without '..'), got \"../web\"",
    "25-context-absolute.yaml":
        "devmesh.yaml:4: services.api.context: expected a path inside the project "
        "(relative, without '..'), got \"/srv/shop/services/api\"",
    "26-env-value-mapping.yaml":
        "devmesh.yaml:8: services.api.env.DATABASE: expected a string or number, got a mapping",
    "27-header-invalid.yaml":
        "devmesh.yaml:3: routing.header: expected a lower-case HTTP header name "
        "(letters, digits, '-'), got \"X-Devmesh-Env\"",
    "28-domain-invalid.yaml":
        "devmesh.yaml:3: routing.domain: expected a lower-case DNS domain such as localhost "
        "or preview.example.com (labels of at most 63 characters, at most 189 in all), "
        'got "preview_example.com"',
    "29-unknown-preset.yaml":
        "devmesh.yaml:5: services.api.preset: unknown preset 'pyhton-web'; did you mean "
        "'python-web'? available: container, node-web, python-web",
    "30-undeclared-preset-variable.yaml":
        "devmesh.yaml:7: services.api.values.prot: preset 'python-web' declares no variable "
        "'prot'; did you mean 'port'? it declares: consecutive_5xx, ejection_time, "
        "max_connections, max_pending_requests, max_requests, port, rate_limit, rate_limit_burst, retries, retry_on, "
        "timeout",
    "31-manifests-without-repo.yaml":
        "devmesh.yaml:2: manifests.repo: required field is missing; expected the manifest "
        "repository's URL or path",
    "32-manifests-mode-wrong.yaml":
        'devmesh.yaml:4: manifests.mode: expected one of push or pull-request, got "merge-request"',
    "33-sync-src-missing.yaml":
        "devmesh.yaml:7: services.api.sync[0].src: sync source 'app' does not exist in build "
        "context 'services/api'",
    "34-preset-value-wrong-type.yaml":
        'devmesh.yaml:7: services.api.values.port: expected an integer 1–65535, got "http"',
    "35-values-without-preset.yaml":
        "devmesh.yaml:6: services.api.values: values fill the variables of a preset, but the "
        "service names no preset; set 'preset' or remove 'values'",
    "36-baseline-invalid.yaml":
        'devmesh.yaml:2: baseline: expected a valid git branch name, got "release..2" '
        "(contains '..')",
    "37-gateway-port-float.yaml":
        "devmesh.yaml:3: routing.gateway_port: expected an integer 1–65535, got 8080.5",
    "38-service-empty.yaml":
        "devmesh.yaml:3: services.api: expected a mapping, got null",
    "39-services-list.yaml":
        "devmesh.yaml:2: services: expected a mapping, got a list",
    "40-second-document.yaml":
        "devmesh.yaml:6: invalid YAML: a second document ('---'); the file must hold exactly one",
    "41-unclosed-quote.yaml":
        "devmesh.yaml:4: invalid YAML: a quoted string starts here and is never closed",
    "42-entry-not-boolean.yaml":
        'devmesh.yaml:6: services.api.entry: expected true or false, got "yes"',
    "43-no-port.yaml":
        "devmesh.yaml:3: services.api: no container port: set 'port' or use a preset that "
        "gives one",
    "44-unknown-sync-key.yaml":
        "devmesh.yaml:9: services.api.sync[0].exclude: unknown field; known fields: dest, src",
    "45-cluster-name-invalid.yaml":
        "devmesh.yaml:3: cluster.name: expected a kind cluster name: lower-case letters, "
        "digits and '-', starting and ending with a letter or digit, at most 40 characters, "
        'got "Dev.Cluster"',
    "46-routing-not-mapping.yaml":
        'devmesh.yaml:2: routing: expected a mapping, got "x-devmesh-env"',
    "47-rebuild-on-string.yaml":
        'devmesh.yaml:6: services.api.rebuild_on: expected a list, got "requirements.txt"',
    "48-app-missing.yaml":
        "devmesh.yaml: app: required field is missing; expected the app's name, "
        "e.g. 'app: shop'",
    "49-reload-unknown.yaml":
        "devmesh.yaml:6: services.api.reload: expected restart, none, {signal: NAME} or "
        '{command: [PROGRAM, ARG…]}, got "reboot"',
    "50-preset-timeout-not-duration.yaml":
        'devmesh.yaml:7: services.api.values.timeout: expected a duration such as 30s, 1.5s, '
        '250ms or 2m, got "soon"',
    "51-service-name-newline.yaml":
        'devmesh.yaml:3: services."api\\n": expected a service name: lower-case letters, '
        "digits and '-', starting with a letter, ending with a letter or digit, at most 30 "
        'characters, got "api\\n"',
    "52-app-newline.yaml":
        "devmesh.yaml:1: app: expected an app name: lower-case letters, digits and '-', "
        "starting with a letter, ending with a letter or digit, at most 22 characters, "
        'got "shop\\n"',
    "53-header-newline.yaml":
        "devmesh.yaml:7: routing.header: expected a lower-case HTTP header name "
        "(letters, digits, '-'), got \"x-devmesh-env\\n\"",
    "54-domain-newline.yaml":
        "devmesh.yaml:7: routing.domain: expected a lower-case DNS domain such as localhost "
        "or preview.example.com (labels of at most 63 characters, at most 189 in all), "
        'got "localhost\\n"',
    "55-cluster-name-newline.yaml":
        "devmesh.yaml:7: cluster.name: expected a kind cluster name: lower-case letters, "
        "digits and '-', starting and ending with a letter or digit, at most 40 characters, "
        'got "devmesh\\n"',
    "56-reload-signal-newline.yaml":
        "devmesh.yaml:6: services.api.reload: expected a signal name such as HUP or SIGUSR1, "
        'got "HUP\\n"',
    "57-port-5000-digits.yaml":
        "devmesh.yaml:5: a number with 5000 digits; devmesh reads numbers of at most 100 digits "
        "(quote it if it is text)",
    "58-context-nul-byte.yaml":
        "devmesh.yaml:4: services.api.context: expected a path without control characters, "
        'got "services/\\u0000api"',
    "59-recursive-alias.yaml":
        "devmesh.yaml:6: alias *api is used inside the node it names (a recursive alias); "
        "devmesh does not read recursive data",
    "60-nesting-too-deep.yaml":
        "devmesh.yaml:6: nested more than 100 levels deep; devmesh reads at most 100",
    "61-alias-bomb.yaml":
        "devmesh.yaml:6: aliases expand the file to more than 100000 values; devmesh reads at "
        "most that many",
    "62-env-key-empty.yaml":
        'devmesh.yaml:7: services.api.env."": expected an environment variable name: letters, '
        "digits and '_', not starting with a digit, got \"\"",
    "63-env-key-equals.yaml":
        'devmesh.yaml:7: services.api.env."A=B": expected an environment variable name: '
        "letters, digits and '_', not starting with a digit, got \"A=B\"",
    "64-env-key-newline.yaml":
        'devmesh.yaml:7: services.api.env."A\\nB": expected an environment variable name: '
        "letters, digits and '_', not starting with a digit, got \"A\\nB\"",
    "65-env-key-reserved.yaml":
        "devmesh.yaml:7: services.api.env.DEVMESH_ENV: names starting with DEVMESH_ are "
        "reserved for the variables devmesh sets (DEVMESH_ENV, DEVMESH_HEADER, DEVMESH_SERVICE)",
    "66-timeout-too-long.yaml":
        "devmesh.yaml:7: services.api.resilience.timeout: expected a duration of at most 24h, "
        'got "99999999999999999999h"',
    "67-retry-attempts-too-many.yaml":
        "devmesh.yaml:8: services.api.resilience.retries.attempts: expected a whole number "
        "of at most 100, got 12345678901234567890123",
    "68-registry-invalid.yaml":
        "devmesh.yaml:7: cluster.registry: expected a registry address host[:port] such as "
        '127.0.0.1:5001, got "not a host"',
    "69-reload-signal-unknown.yaml":
        "devmesh.yaml:6: services.api.reload: expected a signal name such as HUP or SIGUSR1, "
        'got "FOO"',
    "70-domain-label-too-long.yaml":
        "devmesh.yaml:7: routing.domain: expected a lower-case DNS domain such as localhost "
        "or preview.example.com (labels of at most 63 characters, at most 189 in all), "
        'got "' + "a" * 64 + '.example.com"',
    "71-service-key-true.yaml":
        'devmesh.yaml:7: services.true: expected a name, got true; quote it ("true") to use '
        "it as one",
    "72-service-key-null.yaml":
        'devmesh.yaml:7: services.null: expected a name, got null; quote it ("null") to use '
        "it as one",
    "73-context-is-a-file.yaml":
        "devmesh.yaml:4: services.api.context: build context 'services/api/Dockerfile' is a "
        "file, not a folder",
    "74-manifests-repo-empty.yaml":
        "devmesh.yaml:7: manifests.repo: expected the manifest repository's URL or path, "
        'got ""',
    "75-envoy-image-empty.yaml":
        "devmesh.yaml:7: docker.envoy_image: expected an image reference such as "
        'envoyproxy/envoy:v1.36.2, got " "',
    "76-not-utf8.yaml":
        "devmesh.yaml:7: not UTF-8 text (invalid continuation byte); save the file as UTF-8",
    "77-domain-too-long.yaml":
        "devmesh.yaml:7: routing.domain: expected a lower-case DNS domain such as localhost "
        "or preview.example.com (labels of at most 63 characters, at most 189 in all), "
        'got "' + ".".join(["a" * 63] * 3) + '.io"',
    "78-timeout-huge-number.yaml":
        "devmesh.yaml:7: services.api.resilience.timeout: expected a duration of at most 24h, "
        "got 1e+300",
    "79-env-key-number.yaml":
        'devmesh.yaml:7: services.api.env.1: expected a name, got 1; quote it ("1") to use '
        "it as one",
    "80-circuit-breaker-too-large.yaml":
        "devmesh.yaml:8: services.api.resilience.circuit_breaker.max_connections: expected a "
        "whole number of at most 2147483647, got 4294967296",
}


def _fixture_tree(root: Path) -> Path:
    """The build contexts the corpus files refer to."""
    for service in ("api", "web"):
        (root / "services" / service).mkdir(parents=True)
        (root / "services" / service / "Dockerfile").write_text("FROM scratch\n")
    (root / "services" / "api" / "src").mkdir()
    (root / "services" / "api" / "src" / "app.py").write_text("print('api')\n")
    return root


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with build contexts, and the working directory set to it."""
    root = _fixture_tree(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


def _write(root: Path, text: str) -> Path:
    path = root / "devmesh.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the corpus -------------------------------------------------------------------------


def test_every_corpus_file_has_an_expected_message() -> None:
    files = sorted(p.name for p in BAD.glob("*.yaml"))
    assert files == sorted(EXPECTED)
    assert len(files) >= 25


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_config_message(name: str, project_dir: Path) -> None:
    shutil.copyfile(BAD / name, project_dir / "devmesh.yaml")
    started = time.monotonic()
    with pytest.raises(ConfigErrors) as caught:
        load_project(Path("devmesh.yaml"))
    # hostile files (an alias bomb, deep nesting) fail fast, not after exhausting memory
    assert time.monotonic() - started < 2
    expected = EXPECTED[name].replace("{root}", str(project_dir.resolve()))
    assert str(caught.value) == expected
    assert caught.value.exit_code == 2
    # one mistake, one message
    assert len(caught.value.errors) == 1


@pytest.mark.parametrize("name", ["01-port-string.yaml", "17-services-missing.yaml",
                                  "21-build-context-missing.yaml"])
def test_bad_config_found_by_searching_upwards(name: str, project_dir: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The display name is relative to where the command runs, wherever the file is found."""
    shutil.copyfile(BAD / name, project_dir / "devmesh.yaml")
    monkeypatch.chdir(project_dir / "services" / "api")
    with pytest.raises(ConfigErrors) as caught:
        load_project()
    message = str(caught.value)
    # found upwards, the file is shown by its absolute path with the same line and field
    expected = EXPECTED[name].replace("{root}", str(project_dir.resolve()))
    assert message == expected.replace("devmesh.yaml", str(project_dir.resolve() / "devmesh.yaml"), 1)


# --- good configs -----------------------------------------------------------------------


def test_defaults(project_dir: Path) -> None:
    project = load_project(_write(project_dir, "app: shop\nservices:\n  api:\n    context: services/api\n    port: 8000\n"))
    assert project.app == "shop"
    assert project.runtime == "auto"
    assert project.baseline is None
    assert project.routing.header == "x-devmesh-env"
    assert project.routing.domain == "localhost"
    assert project.routing.gateway_port == 8080
    assert project.cluster.name == "devmesh"
    assert project.cluster.context is None
    assert project.manifests is None
    api = project.services["api"]
    assert api.dockerfile == "Dockerfile"
    assert api.sync is None and api.rebuild_on == [] and api.env == {}
    assert project.root == project_dir.resolve()
    assert project.path == project_dir.resolve() / "devmesh.yaml"
    assert project.context_dir("api") == project_dir.resolve() / "services" / "api"
    assert project.dockerfile_path("api") == project_dir.resolve() / "services" / "api" / "Dockerfile"
    assert project.port_of("api") == 8000


def test_single_service_is_the_entry_without_saying_so(project_dir: Path) -> None:
    project = load_project(_write(project_dir, "app: shop\nservices:\n  api:\n    context: services/api\n    port: 8000\n"))
    assert project.services["api"].entry is True
    assert project.entry_service == "api"


def test_entry_among_several(project_dir: Path) -> None:
    text = (
        "app: shop\nservices:\n"
        "  api:\n    context: services/api\n    port: 8000\n"
        "  web:\n    context: services/web\n    port: 8000\n    entry: true\n"
    )
    project = load_project(_write(project_dir, text))
    assert project.entry_service == "web"
    assert project.services["api"].entry is False


def test_preset_fills_port_and_rebuild_and_leaves_sync_to_the_dockerfile(project_dir: Path) -> None:
    project = load_project(_write(project_dir, "app: shop\nservices:\n  api:\n    context: services/api\n    preset: python-web\n"))
    api = project.services["api"]
    assert api.port == 8000
    assert api.sync is None  # read from the Dockerfile's COPY when syncing
    assert "requirements.txt" in api.rebuild_on


def test_the_container_preset_syncs_nothing(project_dir: Path) -> None:
    project = load_project(_write(project_dir, "app: shop\nservices:\n  api:\n    context: services/api\n    preset: container\n"))
    assert project.services["api"].sync == []


def test_the_retired_workdir_variable_says_what_replaced_it(project_dir: Path) -> None:
    text = ("app: shop\nservices:\n  api:\n    context: services/api\n    preset: python-web\n"
            "    values:\n      workdir: /srv/api\n")
    with pytest.raises(ConfigErrors) as caught:
        load_project(_write(project_dir, text))
    assert str(caught.value) == (
        "devmesh.yaml:7: services.api.values.workdir: presets no longer take 'workdir': devmesh "
        "reads where the sources go from the Dockerfile's COPY; remove it, or write the rule "
        "yourself (sync: [{src: ., dest: DIR}])")


def test_preset_values_and_own_fields(project_dir: Path) -> None:
    text = (
        "app: shop\nservices:\n  api:\n    context: services/api\n    preset: python-web\n"
        "    values:\n      port: 9000\n"
        "    sync: [{src: ., dest: /srv/api}]\n"
        "    rebuild_on: [poetry.lock]\n"
    )
    api = load_project(_write(project_dir, text)).services["api"]
    assert api.port == 9000  # a whole ${port} keeps the integer type
    assert [(r.src, r.dest) for r in api.sync or ()] == [(".", "/srv/api")]
    assert api.rebuild_on == ["poetry.lock"]  # the service's own field wins


def test_project_preset_overrides_shipped_and_edits_are_seen(project_dir: Path) -> None:
    presets = project_dir / "presets" / "services"
    presets.mkdir(parents=True)
    preset = presets / "python-web.yaml"
    preset.write_text("variables:\n  port: {default: 7000}\ndefaults:\n  port: ${port}\n")
    config = _write(project_dir, "app: shop\nservices:\n  api:\n    context: services/api\n    preset: python-web\n")
    assert load_project(config).services["api"].port == 7000
    # a long-running process sees an edited preset at the next load
    preset.write_text("variables:\n  port: {default: 7001}\ndefaults:\n  port: ${port}\n")
    os.utime(preset, ns=(preset.stat().st_atime_ns, preset.stat().st_mtime_ns + 1_000_000_000))
    assert load_project(config).services["api"].port == 7001


def test_broken_project_preset_names_its_file(project_dir: Path) -> None:
    presets = project_dir / "presets" / "services"
    presets.mkdir(parents=True)
    (presets / "mine.yaml").write_text("variables:\n  port: {default: 80}\ndefaults:\n  port: ${prot}\n")
    config = _write(project_dir, "app: shop\nservices:\n  api:\n    context: services/api\n    preset: mine\n")
    with pytest.raises(ConfigErrors) as caught:
        load_project(config)
    assert str(caught.value) == (
        "presets/services/mine.yaml:3: defaults: uses ${prot}, which is not declared under 'variables'"
    )


def test_bad_preset_default_blames_the_preset(project_dir: Path) -> None:
    presets = project_dir / "presets" / "services"
    presets.mkdir(parents=True)
    (presets / "mine.yaml").write_text("variables:\n  port: {default: http}\ndefaults:\n  port: ${port}\n")
    config = _write(project_dir, "app: shop\nservices:\n  api:\n    context: services/api\n    preset: mine\n")
    with pytest.raises(ConfigErrors) as caught:
        load_project(config)
    assert str(caught.value) == (
        'devmesh.yaml:3: services.api.port: expected an integer 1–65535, got "http" '
        "(the default of variable 'port' in preset 'mine')"
    )


def test_env_and_build_args_become_strings(project_dir: Path) -> None:
    text = (
        "app: shop\nservices:\n  api:\n    context: services/api\n    port: 8000\n"
        "    env:\n      WORKERS: 4\n      RATIO: 0.5\n      DEBUG: true\n      NAME: api\n"
        "    build_args:\n      PYTHON_VERSION: 3.12\n"
    )
    api = load_project(_write(project_dir, text)).services["api"]
    assert api.env == {"WORKERS": "4", "RATIO": "0.5", "DEBUG": "true", "NAME": "api"}
    assert api.build_args == {"PYTHON_VERSION": "3.12"}


def test_full_example_from_the_docs_loads(project_dir: Path) -> None:
    """The annotated example in docs/config.md is a valid file."""
    doc = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    start = doc.index("<!-- full-example -->")
    block = doc[start:].split("```yaml\n", 1)[1].split("```", 1)[0]
    for service in ("web", "stock"):
        (project_dir / "services" / service).mkdir(parents=True, exist_ok=True)
        (project_dir / "services" / service / "Dockerfile").write_text("FROM scratch\n")
    (project_dir / "services" / "web" / "static").mkdir()
    project = load_project(_write(project_dir, block))
    assert project.entry_service == "web"
    assert project.manifests is not None and project.manifests.mode == "pull-request"


def test_merge_keys_are_read_with_lines(project_dir: Path) -> None:
    text = (
        "app: shop\nservices:\n"
        "  api: &common\n    context: services/api\n    port: 8000\n"
        "  web:\n    <<: *common\n    context: services/web\n    entry: true\n    port: web\n"
    )
    with pytest.raises(ConfigErrors) as caught:
        load_project(_write(project_dir, text))
    assert str(caught.value) == 'devmesh.yaml:10: services.web.port: expected an integer 1–65535, got "web"'


def test_service_named_like_a_type_keeps_its_place(project_dir: Path) -> None:
    text = "app: shop\nservices:\n  int:\n    context: services/api\n    port: x\n"
    with pytest.raises(ConfigErrors) as caught:
        load_project(_write(project_dir, text))
    assert str(caught.value) == 'devmesh.yaml:5: services.int.port: expected an integer 1–65535, got "x"'


def test_several_mistakes_are_reported_in_file_order(project_dir: Path) -> None:
    text = (
        "app: shop\nruntime: podman\nservices:\n  api:\n    context: services/api\n"
        "    port: http\n    entyr: true\n"
    )
    with pytest.raises(ConfigErrors) as caught:
        load_project(_write(project_dir, text))
    assert str(caught.value).splitlines() == [
        'devmesh.yaml:2: runtime: expected one of auto, kind or docker, got "podman"',
        'devmesh.yaml:6: services.api.port: expected an integer 1–65535, got "http"',
        "devmesh.yaml:7: services.api.entyr: unknown field; did you mean 'entry'?",
    ]
    assert [e.line for e in caught.value.errors] == [2, 6, 7]
    assert all(isinstance(e, ConfigError) for e in caught.value.errors)


def test_yaml_errors_are_config_errors(project_dir: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_text("app: [\n", project_dir / "devmesh.yaml", "devmesh.yaml")
    assert caught.value.errors[0].line == 1


def test_not_utf8(project_dir: Path) -> None:
    (project_dir / "devmesh.yaml").write_bytes(b"app: caf\xe9\n")
    with pytest.raises(ConfigErrors) as caught:
        load_project(Path("devmesh.yaml"))
    assert str(caught.value) == (
        "devmesh.yaml:1: not UTF-8 text (invalid continuation byte); save the file as UTF-8")


def test_find_config_searches_upwards(project_dir: Path) -> None:
    config = _write(project_dir, "app: shop\nservices:\n  api:\n    context: services/api\n    port: 8000\n")
    assert find_config(project_dir / "services" / "api") == config.resolve()


def test_no_config_anywhere(tmp_path: Path) -> None:
    with pytest.raises(UserInputError) as caught:
        find_config(tmp_path)
    assert str(caught.value) == f"no devmesh.yaml in {tmp_path.resolve()} or any parent directory"
    assert caught.value.hint is not None and "devmesh init" in caught.value.hint


# --- through the command line -----------------------------------------------------------


def test_cli_reports_a_bad_config_with_status_2(project_dir: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copyfile(BAD / "01-port-string.yaml", project_dir / "devmesh.yaml")
    with pytest.raises(SystemExit) as exited:
        main(["-c", "devmesh.yaml", "render", "--branch", "main"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == ["error: " + EXPECTED["01-port-string.yaml"]]
    assert "Traceback" not in err


def test_cli_debug_shows_the_traceback(project_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copyfile(BAD / "05-unknown-top-level-key.yaml", project_dir / "devmesh.yaml")
    with pytest.raises(SystemExit) as exited:
        main(["--debug", "-c", "devmesh.yaml", "render", "--branch", "main"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == "error: " + EXPECTED["05-unknown-top-level-key.yaml"]


def _run_devmesh(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DEVMESH_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "devmesh", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", ["13-yaml-tab.yaml", "19-two-entry-services.yaml",
                                  "30-undeclared-preset-variable.yaml"])
def test_cli_subprocess_bad_config(name: str, project_dir: Path) -> None:
    shutil.copyfile(BAD / name, project_dir / "devmesh.yaml")
    done = _run_devmesh(project_dir, "-c", "devmesh.yaml", "render", "--branch", "main")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == ["error: " + EXPECTED[name]]
    assert "Traceback" not in done.stderr


def test_cli_subprocess_debug_traceback(project_dir: Path) -> None:
    shutil.copyfile(BAD / "01-port-string.yaml", project_dir / "devmesh.yaml")
    done = _run_devmesh(project_dir, "--debug", "-c", "devmesh.yaml", "render", "--branch", "main")
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.splitlines()[-1] == "error: " + EXPECTED["01-port-string.yaml"]
