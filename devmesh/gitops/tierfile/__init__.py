"""A tier's ``kustomization.yaml``: its ``images:`` entries read, and edited as text splices
(as are the ``resources:`` entries ``manifests init`` adds).

Every edit replaces, inserts or removes a span of the text and leaves every other byte as it
was (line endings, indentation, comments, quoting, anchors, a ``...`` end marker). An edit
that cannot be made that way, or that would reach other entries through an anchor or a
merge key, is refused naming the file and line; a file is never reformatted.

Modules:

- ``document``   the file read: ``TierFile``, its ``images:`` ``Entry`` list (``parse_tier``)
- ``editor``     text positions, scalar quoting and the ``Editor`` that collects splices
- ``pins``       ``images:`` entries repinned, added or removed (``edit_pin``, ``verify_edit``)
- ``resources``  paths appended to ``resources:`` (``add_resources``, ``verify_resources``)
"""

from devmesh.gitops.tierfile.document import Effective, Entry, TierFile, parse_tier
from devmesh.gitops.tierfile.pins import edit_pin, verify_edit
from devmesh.gitops.tierfile.resources import add_resources, verify_resources

__all__ = [
    "Effective",
    "Entry",
    "TierFile",
    "add_resources",
    "edit_pin",
    "parse_tier",
    "verify_edit",
    "verify_resources",
]
