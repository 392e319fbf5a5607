"""Reading the explain box: a request typed as a URL, ``Host: …`` and ``Name: value`` headers."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class TypedRequest:
    host: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def parse_request(text: str) -> TypedRequest:
    """``http://a.shop.localhost:8080/ -H 'x-devmesh-env: a'``, ``host=a.shop.localhost``,
    ``x-devmesh-env: a`` … → the host and headers they name (header names lower-cased)."""
    try:
        words = shlex.split(text)
    except ValueError:  # an unclosed quote while typing: read it as plain words
        words = text.split()
    host: str | None = None
    headers: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in ("-H", "--header", "curl", "GET", "POST", "PUT", "DELETE"):
            continue
        if "://" in word:
            host = urlsplit(word).netloc or host
            continue
        name, sep, value = _split_pair(word)
        if sep and not value and i < len(words) and not _split_pair(words[i])[1]:
            value = words[i]  # "x-devmesh-env: a" split by the shell into two words
            i += 1
        if not sep:
            if "." in word or word == "localhost":
                host = word
            continue
        if name.lower() == "host":
            host = value
        elif name:
            headers[name.lower()] = value
    return TypedRequest(host, headers)


_HEADER_NAME = re.compile(r"^[A-Za-z0-9-]+$")


def _split_pair(word: str) -> tuple[str, str, str]:
    """``name: value`` or ``name=value`` where name reads as a header name."""
    for sep in (":", "="):
        name, found, value = word.partition(sep)
        if found and _HEADER_NAME.match(name.strip()):
            return name.strip(), found, value.strip()
    return word, "", ""
