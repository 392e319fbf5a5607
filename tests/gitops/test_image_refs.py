"""Image references follow the distribution reference grammar (docker/distribution, OCI)."""

from __future__ import annotations

import pytest

from devmesh.errors import UserInputError
from devmesh.gitops.images import ImageRef, check_digest, parse_image_ref

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("shop/api", "shop/api"),
        ("api", "api"),
        ("127.0.0.1:5001/shop/api", "127.0.0.1:5001/shop/api"),
        ("localhost/x", "localhost/x"),
        ("localhost:5000/a/b/c", "localhost:5000/a/b/c"),
        ("Registry.Example.COM/shop/api", "Registry.Example.COM/shop/api"),  # hosts may be upper case
        ("my-registry.example:443/team_a/api__v2", "my-registry.example:443/team_a/api__v2"),
        ("example.com/a--b/c.d", "example.com/a--b/c.d"),
        ("[::1]:5000/shop/api", "[::1]:5000/shop/api"),
        ("[2001:db8::1]/shop/api", "[2001:db8::1]/shop/api"),
        ("shop/api:1.0-rc_1", "shop/api"),  # a tag beside the digest is dropped
        ("r.example:5000/shop/api:latest", "r.example:5000/shop/api"),
    ],
)
def test_valid_references_are_accepted(text: str, name: str) -> None:
    assert parse_image_ref(f"{text}@{DIGEST}") == ImageRef(name, DIGEST)


@pytest.mark.parametrize(
    "text",
    [
        "UPPER/x",  # no '.', ':' or localhost: a path component, and those are lower case
        "Shop",
        "shop/API",
        "example.com/Shop/api",
        "-bad.example/x",
        "bad-.example/x",
        "a..b/x",
        "example.com:port/x",
        "example.com:/x",
        "[::1/x",
        "[zz::1]/x",
        "shop//api",
        "shop/api/",
        "/shop/api",
        "shop/.api",
        "shop/api.",
        "shop/a...b",
        "shop/a___b",
        "shop/api:",
        "shop/api:-tag",
        "shop/api:" + "t" * 129,
        "shop/api:tag!",
        "shop/api:ta:g",
        "shop/api\n",
        "shop/ápi",
        "exam_ple.com/x/y:1",
        "a" * 64,  # a bare identifier is an image id, not a name
        "r.example/" + "a" * 250,  # a name is at most 255 characters
        "",
    ],
)
def test_invalid_references_are_refused(text: str) -> None:
    with pytest.raises(UserInputError, match="not a valid image name|not a valid tag|not pinned by digest"):
        parse_image_ref(f"{text}@{DIGEST}")


@pytest.mark.parametrize(
    "digest",
    [DIGEST + "\n", DIGEST.upper(), "sha256:" + "a" * 63, "sha512:" + "a" * 64, " " + DIGEST, "sha256:" + "g" * 64],
)
def test_bad_digests_are_refused(digest: str) -> None:
    with pytest.raises(UserInputError):
        check_digest(digest)
    if digest.strip() != DIGEST:  # a reference given on the command line may have spaces around it
        with pytest.raises(UserInputError):
            parse_image_ref(f"shop/api@{digest}")
