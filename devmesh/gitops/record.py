"""Record the manifest repo in devmesh.yaml, keeping the file's comments and order."""

from __future__ import annotations

import io
from pathlib import Path

from devmesh.errors import UserInputError
from devmesh.files import replace_file


def record_manifests(config_path: Path, repo: str) -> bool:
    """Set ``manifests.repo`` in ``config_path`` to ``repo``; return False if it already was.

    Other ``manifests`` fields (path, branch, mode, registry) are kept. The file is replaced
    atomically, so an interrupted write never leaves half a devmesh.yaml.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError

    from devmesh.gitops.yamlio import round_trip_yaml

    repo = repo.strip()
    if not repo:
        raise UserInputError("--manifests: expected a git URL or a local path, got an empty string")
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserInputError(f"{config_path}: no such file") from None
    yaml: YAML = round_trip_yaml(text)
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise UserInputError(f"{config_path}: invalid YAML: {exc}") from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise UserInputError(f"{config_path}: expected a mapping at the top level")
    section = data.get("manifests")
    if section is None:
        data["manifests"] = CommentedMap(repo=repo)
    elif isinstance(section, CommentedMap):
        if section.get("repo") == repo:
            return False
        if "repo" in section:
            section["repo"] = repo
        else:
            section.insert(0, "repo", repo)
    else:
        line = data.lc.key("manifests")[0] + 1
        raise UserInputError(f"{config_path}:{line}: manifests: expected a mapping")
    out = io.StringIO()
    yaml.dump(data, out)
    replace_file(config_path, out.getvalue().encode("utf-8"))
    return True
