"""The Kustomize layout of the manifest repo, read and edited in place.

```
<path>/tiers.yaml                         app name and the tiers in order
<path>/base/<service>/kustomization.yaml  the service's manifests
<path>/tiers/<tier>/kustomization.yaml    one images: entry per service, pinned by digest
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devmesh.errors import UserInputError
from devmesh.gitops.images import ImageRef, check_digest
from devmesh.gitops.yamlio import compose, load_file, read_data, write_file

TIERS_FILE = "tiers.yaml"
KUSTOMIZATION = "kustomization.yaml"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class Tier:
    """One rollout tier; ``context`` is the kube context its cluster is reached with."""

    name: str
    context: str | None = None


def check_tier_name(name: str) -> str:
    if not _NAME.match(name) or len(name) > 40:
        raise UserInputError(
            f"{name!r} is not a valid tier name: lower-case letters, digits and '-', at most 40 characters"
        )
    return name


def image_name(app: str, service: str) -> str:
    """The placeholder image name the base manifests use; tiers replace it by digest."""
    return f"{app}/{service}"


@dataclass(frozen=True)
class Layout:
    """The layout under ``root`` (the work tree's ``manifests.path``)."""

    root: Path
    display: str = "manifest repo"

    @property
    def tiers_file(self) -> Path:
        return self.root / TIERS_FILE

    def base_dir(self, service: str) -> Path:
        return self.root / "base" / service

    def tier_file(self, tier: str) -> Path:
        return self.root / "tiers" / tier / KUSTOMIZATION

    def relative(self, path: Path, workdir: Path) -> str:
        return path.relative_to(workdir).as_posix()

    # --- tiers.yaml ---------------------------------------------------------------------

    def exists(self) -> bool:
        return self.tiers_file.is_file()

    def _tiers_doc(self) -> dict[str, Any]:
        where = f"{self.display}: {self.tiers_file.relative_to(self.root).as_posix()}"
        if not self.tiers_file.is_file():
            raise UserInputError(
                f"{self.display} has no {TIERS_FILE}",
                hint="run 'devmesh manifests init' to write the layout",
            )
        data = read_data(self.tiers_file, where)
        if not isinstance(data, dict) or not isinstance(data.get("tiers"), list) or not data["tiers"]:
            raise UserInputError(f"{where}: expected a mapping with a non-empty 'tiers' list")
        return data

    def app(self, fallback: str | None = None) -> str:
        app = self._tiers_doc().get("app") or fallback
        if not isinstance(app, str) or not app:
            raise UserInputError(f"{self.display}: {TIERS_FILE} names no 'app'")
        return app

    def tiers(self) -> list[Tier]:
        """The tiers in rollout order."""
        where = f"{self.display}: {TIERS_FILE}"
        out: list[Tier] = []
        for i, item in enumerate(self._tiers_doc()["tiers"]):
            if isinstance(item, str):
                item = {"name": item}
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise UserInputError(f"{where}: tiers[{i}]: expected a name or a mapping with 'name'")
            context = item.get("context")
            out.append(Tier(check_tier_name(str(item["name"])), str(context) if context else None))
        names = [t.name for t in out]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise UserInputError(f"{where}: tier {dupes[0]!r} is listed twice")
        return out

    def tier(self, name: str) -> tuple[int, list[Tier]]:
        """The index of tier ``name`` and all tiers; an unknown name is a UserInputError."""
        tiers = self.tiers()
        for i, tier in enumerate(tiers):
            if tier.name == name:
                return i, tiers
        known = ", ".join(t.name for t in tiers)
        raise UserInputError(f"unknown tier {name!r}; the tiers are, in order: {known}")

    # --- services -----------------------------------------------------------------------

    def services(self) -> list[str]:
        """Services with base manifests, sorted."""
        base = self.root / "base"
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if (p / KUSTOMIZATION).is_file())

    def require_service(self, service: str) -> None:
        if service in self.services():
            return
        known = ", ".join(self.services()) or "none"
        raise UserInputError(
            f"unknown service {service!r} in {self.display} (it has: {known})",
            hint="run 'devmesh manifests init' to add the project's new services",
        )

    # --- tier kustomizations --------------------------------------------------------------

    def _tier_where(self, tier: str) -> str:
        path = self.tier_file(tier)
        where = f"{self.display}: {path.relative_to(self.root).as_posix()}"
        if not path.is_file():
            raise UserInputError(f"{where} is missing", hint="run 'devmesh manifests init' to write it")
        return where

    def _tier_data(self, tier: str) -> dict[str, Any]:
        where = self._tier_where(tier)
        data = read_data(self.tier_file(tier), where)
        if not isinstance(data, dict):
            raise UserInputError(f"{where}: expected a Kustomization mapping")
        if data.get("images") is not None and not isinstance(data["images"], list):
            raise UserInputError(f"{where}: images: expected a list")
        return data

    def pins(self, tier: str, app: str) -> dict[str, ImageRef]:
        """service → the image the tier pins for it (services without a pin are left out)."""
        data = self._tier_data(tier)
        by_name = {image_name(app, s): s for s in self.services()}
        out: dict[str, ImageRef] = {}
        for entry in data.get("images") or []:
            if not isinstance(entry, dict) or entry.get("name") not in by_name:
                continue
            digest = entry.get("digest")
            if not isinstance(digest, str):
                continue
            new_name = entry.get("newName") or entry["name"]
            out[by_name[entry["name"]]] = ImageRef(str(new_name), check_digest(str(digest)))
        return out

    def pin(self, tier: str, app: str, service: str) -> ImageRef | None:
        return self.pins(tier, app).get(service)

    def set_pin(self, tier: str, app: str, service: str, ref: ImageRef | None) -> None:
        """Pin ``service`` to ``ref`` in ``tier`` (None removes the pin), editing in place.

        Re-pinning an existing entry rewrites just its two values in the text, byte for byte
        around them; adding or removing an entry goes through a round-trip YAML edit. Both
        keep the file's comments and order.
        """
        self._tier_data(tier)  # validates the file
        path = self.tier_file(tier)
        name = image_name(app, service)
        text = path.read_text(encoding="utf-8")
        spliced = splice_pin(text, name, ref) if ref is not None else None
        if spliced is not None:
            path.write_text(spliced, encoding="utf-8")
            return
        self._edit_pin(tier, name, ref)

    def _edit_pin(self, tier: str, name: str, ref: ImageRef | None) -> None:
        from ruamel.yaml.comments import CommentedMap, CommentedSeq

        data, yaml = load_file(self.tier_file(tier), self._tier_where(tier))
        images = data.get("images")
        entry = next(
            (e for e in images or [] if isinstance(e, dict) and e.get("name") == name), None
        )
        if ref is None:
            if entry is not None:
                images.remove(entry)
                if not images:
                    del data["images"]
        elif entry is not None:
            entry["newName"] = ref.name
            entry["digest"] = ref.digest
            entry.pop("newTag", None)  # a digest pins the image; a tag beside it only confuses
        else:
            if images is None:
                images = CommentedSeq()
                data["images"] = images
            images.append(CommentedMap(name=name, newName=ref.name, digest=ref.digest))
        write_file(self.tier_file(tier), data, yaml)


def splice_pin(text: str, name: str, ref: ImageRef) -> str | None:
    """``text`` with the ``images:`` entry ``name`` re-pinned to ``ref``, or None if the entry
    is not a plain block mapping with ``newName`` and ``digest`` (the caller then edits the
    YAML structurally)."""
    import yaml

    root = compose(text)
    if not isinstance(root, yaml.MappingNode):
        return None
    images = next((v for k, v in root.value if k.value == "images"), None)
    if not isinstance(images, yaml.SequenceNode):
        return None
    for item in images.value:
        if not isinstance(item, yaml.MappingNode) or item.flow_style:
            continue
        fields = {k.value: v for k, v in item.value if isinstance(k, yaml.ScalarNode)}
        if getattr(fields.get("name"), "value", None) != name:
            continue
        if "newTag" in fields:
            return None
        targets: list[tuple[yaml.ScalarNode, str]] = []
        for key, value in (("newName", ref.name), ("digest", ref.digest)):
            node = fields.get(key)
            if not isinstance(node, yaml.ScalarNode) or node.style not in ("", None, "'", '"'):
                return None
            targets.append((node, value))
        out = text
        for node, value in sorted(targets, key=lambda t: -t[0].start_mark.index):
            quote = node.style or ""
            out = out[: node.start_mark.index] + f"{quote}{value}{quote}" + out[node.end_mark.index :]
        return out
    return None
