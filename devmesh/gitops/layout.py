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
from devmesh.files import replace_file
from devmesh.gitops import tierfile
from devmesh.gitops.images import ImageRef, check_digest, check_name
from devmesh.gitops.tierfile import TierFile
from devmesh.gitops.yamlio import read_data, read_text

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

    def read_tier(self, tier: str) -> TierFile:
        """The tier's kustomization.yaml, read and checked (errors name the file and line)."""
        where = self._tier_where(tier)
        return tierfile.parse_tier(read_text(self.tier_file(tier), where), where)

    def pins(self, tier: str, app: str) -> dict[str, ImageRef]:
        """service → the image the tier pins for it (services without a pin are left out)."""
        return self._pins(self.read_tier(tier), app)

    def _pins(self, doc: TierFile, app: str) -> dict[str, ImageRef]:
        by_name = {image_name(app, s): s for s in self.services()}
        out: dict[str, ImageRef] = {}
        for entry in doc.entries:
            service = by_name.get(entry.name)
            if service is None or "digest" not in entry.fields:
                continue  # not devmesh's, or not pinned by digest (yet)
            new_name = entry.fields.get("newName") or entry.name
            try:
                digest = check_digest(entry.fields["digest"])
            except UserInputError as exc:
                raise doc.fail(entry.field_line("digest"), exc.message) from None
            try:
                if not isinstance(new_name, str):
                    raise UserInputError(f"newName: expected an image name, not {new_name!r:.40}")
                name = check_name(new_name)
            except UserInputError as exc:
                raise doc.fail(entry.field_line("newName"), exc.message) from None
            out[service] = ImageRef(name, digest)
        return out

    def pin(self, tier: str, app: str, service: str) -> ImageRef | None:
        return self.pins(tier, app).get(service)

    def set_pin(self, tier: str, app: str, service: str, ref: ImageRef | None) -> None:
        """Pin ``service`` to ``ref`` in ``tier`` (None removes the pin), editing in place.

        The edit is a text splice: every byte outside the entry stays as it was. The result
        is read back before it is written; if it does not read, or if any other image in the
        file would change, nothing is written (UserInputError). Promotion and rollback both
        come through here.
        """
        before, after = self.pin_edit(tier, app, service, ref)
        if after != before:
            replace_file(self.tier_file(tier), after.encode("utf-8"))

    def pin_edit(self, tier: str, app: str, service: str, ref: ImageRef | None) -> tuple[str, str]:
        """(the tier file's text, the text ``set_pin`` would write): the same edit, checked
        the same way, made in memory only; nothing on disk changes."""
        doc = self.read_tier(tier)
        self._pins(doc, app)  # a bad pin anywhere in the file is reported before any edit
        name = image_name(app, service)
        text = tierfile.edit_pin(doc, name, ref)
        if text != doc.text:
            tierfile.verify_edit(doc, text, name, ref)
        return doc.text, text

    def add_resources(self, tier: str, paths: list[str]) -> list[str]:
        """Add those of ``paths`` the tier does not list yet to its ``resources:``; the paths added.

        Like set_pin, a text splice (only the new entries change), read back and checked
        before the file is written whole; what cannot be added so is a UserInputError.
        """
        doc = self.read_tier(tier)
        text, added = tierfile.add_resources(doc, paths)
        if not added:
            return []
        tierfile.verify_resources(doc, text, added)
        replace_file(self.tier_file(tier), text.encode("utf-8"))
        return added


def splice_pin(text: str, name: str, ref: ImageRef) -> str | None:
    """``text`` with the ``images:`` entry ``name`` re-pinned to ``ref`` in place, or None
    when it has no such entry."""
    doc = tierfile.parse_tier(text, "tier file")
    if doc.entry(name) is None:
        return None
    return tierfile.edit_pin(doc, name, ref)
