"""Image references pinned by digest: ``name@sha256:<64 hex>``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from devmesh.errors import UserInputError

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
# A repository name as the registry sees it: optional host[:port], then path components.
_NAME = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)


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
    """``name@sha256:<digest>`` → ImageRef; anything else is a UserInputError."""
    name, at, digest = text.strip().partition("@")
    if not at or not _DIGEST.match(digest):
        raise UserInputError(
            f"{text!r} is not pinned by digest: expected NAME@sha256:<64 hex digits>"
        )
    if ":" in name.rsplit("/", 1)[-1]:  # a tag as well as a digest: keep the digest only
        name = name.rsplit(":", 1)[0]
    if not _NAME.match(name):
        raise UserInputError(f"{text!r}: {name!r} is not a valid image name")
    return ImageRef(name, digest)


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 hex>``, else raise UserInputError."""
    if not _DIGEST.match(digest):
        raise UserInputError(f"{digest!r} is not an image digest (sha256:<64 hex digits>)")
    return digest
