"""Image references pinned by digest: ``name@sha256:<64 hex>``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from devmesh.errors import UserInputError

# \Z, not $: "$" also matches before a final newline, which would let "sha256:…\n" through.
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")

# The distribution reference grammar (github.com/distribution/reference, regexp.go), written
# out here: a name is [domain "/"] path-component ("/" path-component)*.
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[A-Fa-f0-9:]+\])(?::[0-9]+)?\Z"
)
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")  # Go's \w is ASCII only
_IDENTIFIER = re.compile(r"[a-f0-9]{64}\Z")
NAME_MAX = 255  # the grammar's limit on a whole name, domain included


@dataclass(frozen=True, order=True)
class ImageRef:
    """An image pinned by content: the same digest is the same asset wherever it runs."""

    name: str
    digest: str

    def __str__(self) -> str:
        return f"{self.name}@{self.digest}"

    @property
    def short(self) -> str:
        """``sha256:`` and the first 12 hex digits: enough to tell images apart in a table."""
        return self.digest[: len("sha256:") + 12]


def is_digest_ref(text: str) -> bool:
    """Whether ``text`` reads as ``name@sha256:<digest>``."""
    try:
        parse_image_ref(text)
    except UserInputError:
        return False
    return True


def parse_image_ref(text: str) -> ImageRef:
    """``name[:tag]@sha256:<digest>`` → ImageRef (the tag is dropped); else a UserInputError."""
    name, at, digest = text.strip().partition("@")
    if not at or not _DIGEST.match(digest):
        raise UserInputError(
            f"{text!r} is not pinned by digest: expected NAME@sha256:<64 hex digits>"
        )
    last = name.rsplit("/", 1)[-1]
    if ":" in last and not last.startswith("["):  # a tag as well as a digest: keep the digest only
        name, _, tag = name.rpartition(":")
        if not _TAG.match(tag):
            raise UserInputError(f"{text!r}: {tag!r} is not a valid tag")
    problem = name_problem(name)
    if problem:
        raise UserInputError(f"{text!r}: {name!r} is not a valid image name ({problem})")
    return ImageRef(name, digest)


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a repository name by the distribution grammar, or None if it is one.

    The first component is a registry host only when it has a '.' or a ':' or is
    ``localhost``, as the grammar's notes say; otherwise it is a path component, and those are
    lower case. (Docker's normaliser also takes an upper-case first component for a host;
    a one-label upper-case registry is far likelier a typo than a registry, so it is refused.)
    """
    if not name:
        return "it is empty"
    if len(name) > NAME_MAX:
        return f"longer than {NAME_MAX} characters"
    if _IDENTIFIER.match(name):
        return "64 hex digits are an image id, not a name"
    first, slash, rest = name.partition("/")
    path = name
    if slash and (first == "localhost" or any(c in first for c in ".:[")):
        if not _DOMAIN.match(first):
            return f"{first!r} is not a registry host[:port]"
        path = rest
    for component in path.split("/"):
        if not _PATH_COMPONENT.match(component):
            return (
                f"{component!r}: path components are lower-case letters and digits, "
                "joined by '.', '_', '__' or dashes"
            )
    return None


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise UserInputError."""
    problem = name_problem(name)
    if problem:
        raise UserInputError(f"{name!r} is not a valid image name ({problem})")
    return name


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 hex>``, else raise UserInputError."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise UserInputError(f"{digest!r} is not an image digest (sha256:<64 hex digits>)")
    return digest
