"""The shared GitOps manifest repo: layout, tiers, promotion, rollback and history.

Modules, each with one job:

- ``settings``  where the repo is (devmesh.yaml ``manifests:`` or ``DEVMESH_MANIFESTS``)
- ``record``    write ``manifests.repo`` into devmesh.yaml (``devmesh init --manifests``)
- ``cache``     the locked, cached clone, reset to the remote tip for every operation
- ``layout``    tiers.yaml, base/ and tiers/ — read and edited in place
- ``land``      commit and push, starting again on the new tip after a push race
- ``promote``, ``rollback``, ``history``, ``tiers``, ``scaffold``, ``publish``

Importing this package is cheap; GitPython and the docker SDK load with the modules that
need them.
"""

from devmesh.gitops.record import record_manifests

__all__ = ["record_manifests"]
