"""What can be read of a devmesh.yaml that does not load: the app's name and runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from devmesh.app.by_labels import open_by_labels, salvage
from devmesh.errors import UserInputError


@pytest.mark.parametrize(("text", "app", "runtime"), [
    ("app: shop\nservices: [\n", "shop", None),
    ("# the shop\napp: 'shop'  # its name\nruntime: kind\nservices: {{{\n", "shop", "kind"),
    ('app: "shop"\nruntime: "docker"\n', "shop", "docker"),
    ("services:\n  app: nested\napp: top\n", "top", None),  # only a top-level line counts
    ("app: Shop_Bad\n", None, None),  # not a name devmesh could have started anything under
    ("app: *alias\n", None, None),
    ("app: shop\nruntime: podman\n", "shop", None),
    (b"app: shop\n\xff\xfe broken bytes\n".decode("latin-1"), "shop", None),
])
def test_salvage_reads_plain_top_level_lines(tmp_path: Path, text: str, app: str | None,
                                             runtime: str | None) -> None:
    path = tmp_path / "devmesh.yaml"
    path.write_text(text, encoding="latin-1")
    found = salvage(path)
    assert (found.app, found.runtime) == (app, runtime)


def test_a_context_means_the_kind_runtime(tmp_path: Path) -> None:
    path = tmp_path / "devmesh.yaml"
    path.write_text("app: shop\nruntime: docker\nbroken: [\n")
    rt = open_by_labels(salvage(path), None, "some-cluster")
    assert (rt.name, rt.app, getattr(rt, "context", None)) == ("kind", "shop", "some-cluster")


def test_kind_without_an_app_name_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "devmesh.yaml"
    path.write_text("app: [broken\n")
    with pytest.raises(UserInputError, match=r"^devmesh.yaml: cannot tell the app's name"):
        open_by_labels(salvage(path), "kind", None)
