"""Where a mistake in devmesh's YAML files is and how it reads: locations as dotted paths and
lines, values as an error message shows them, and pydantic's validation errors translated into
devmesh's (the location mapped onto the data, and so onto a line; the message in the words of
``devmesh.yaml``)."""

from __future__ import annotations

import difflib
import json
import re
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from devmesh.errors import ConfigError, UserInputError

Loc = tuple[str | int, ...]


def describe(value: Any) -> str:
    """How a YAML value reads in an error message (long text shortened)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        shown = json.dumps(value if len(value) <= 200 else value[:200], ensure_ascii=False)
        # A line break or another control character would split the one-line message.
        shown = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", lambda m: f"\\u{ord(m.group()):04x}", shown)
        return shown if len(value) <= 200 else f"{shown[:-1]}…\" ({len(value)} characters)"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dotted(loc: Loc) -> str:
    """``("services", "api", "sync", 0, "src")`` → ``services.api.sync[0].src``; a key that is
    not a plain word is quoted (``env."A=B"``), so the path stays on one line."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            shown = part if _PLAIN_KEY.fullmatch(part) else describe(part)
            out += ("." if out else "") + shown
    return out


def line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    """The line of ``loc``, else of its nearest ancestor that has one."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class whose field the last element of ``loc`` names, from ``root`` down."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if model is None:
            return None
        if isinstance(model, dict):  # a mapping of names to models: the part is a name
            model = model["value"]
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _field_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _field_model(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        inner = _field_model(args[1])
        return {"value": inner} if inner is not None else None
    if origin is list and args:
        return _field_model(args[0])
    if args and origin is not None:  # Optional[...] / unions / Annotated
        for arg in args:
            found = _field_model(arg)
            if found is not None:
                return found
        return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def did_you_mean(root: type[BaseModel], loc: Loc) -> tuple[str | None, list[str]]:
    """For an unknown field at ``loc``: the closest known field, and all known fields."""
    model = _model_at(root, loc)
    known = sorted(model.model_fields) if model else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return (close[0] if close else None), known


# What a required field holds, for the message when it is missing: (model, field) → words.
_REQUIRED = {
    ("Project", "app"): "the app's name, e.g. 'app: shop'",
    ("Project", "services"): "a mapping of service names to their settings",
    ("Manifests", "repo"): "the manifest repository's URL or path",
    ("SyncRule", "src"): "the folder or file to copy, relative to the build context",
    ("SyncRule", "dest"): "where it goes in the container, an absolute path",
}


def translate(root: type[BaseModel], error: Any, loc: Loc) -> str:
    """The message for one pydantic error at ``loc`` (as :func:`error_loc` maps it)."""
    kind = error["type"]
    got = describe(error.get("input"))
    ctx = error.get("ctx") or {}
    if kind.startswith("devmesh_"):
        return str(error["msg"])
    if kind == "missing":
        model = _model_at(root, loc)
        wanted = _REQUIRED.get((model.__name__ if model else "", str(loc[-1])))
        return f"required field is missing; expected {wanted}" if wanted else "required field is missing"
    if kind == "extra_forbidden":
        close, known = did_you_mean(root, loc)
        hint = f"; did you mean {close!r}?" if close else (
            f"; known fields: {', '.join(known)}" if known else ""
        )
        return f"unknown field{hint}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected an integer, got {got}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {got}"
    if kind in ("string_type", "str_type"):
        return f"expected a string, got {got}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {got}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a list, got {got}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"expected one of {expected}, got {got}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length', 1)} item(s), got none"
    return f"{error['msg']}, got {got}"


# Names pydantic gives the branches of a union inside an error location.
_UNION_TAGS = frozenset({"str", "int", "float", "bool", "none", "list", "dict"})


def error_loc(loc: Loc, data: Any) -> Loc:
    """Map a pydantic error location onto the data: mapping keys as strings (as in the line
    table), list positions as integers, pydantic's internal parts (union branches, validator
    names, ``[key]``) dropped. Walking the data keeps a service named ``int`` intact."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part == "[key]"):
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
            out.append(str(part))
            continue
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            out.append(part)
            continue
        if isinstance(part, str) and (part in _UNION_TAGS or "[" in part) and out:
            continue
        out.append(part if isinstance(part, int) and isinstance(node, list) else str(part))
        node = None
    return tuple(out)


class ConfigErrors(UserInputError):
    """One or more ConfigErrors, printed one per line in file order."""

    def __init__(self, errors: list[ConfigError]) -> None:
        errors = sorted(errors, key=lambda e: (e.line or 0))
        super().__init__("\n".join(e.message for e in errors))
        self.errors = errors
