"""Opening a ``KubeClient`` for a context of the kubeconfig, with a one-line error when the
kubeconfig or the context cannot be used."""

from __future__ import annotations

import os

import yaml

from devmesh.runtime.kind.errors import KubeconfigError
from devmesh.runtime.kind.kube import KubeClient

_CONTEXT_HINT = ("'devmesh cluster up' creates the kind cluster and its context; "
                 "'kubectl config get-contexts' lists the others")


def _kubeconfig_problem(files: str, context: str) -> str | None:
    """What keeps ``context`` from being read out of the kubeconfig files (``files`` is a
    ``KUBECONFIG`` value: paths joined by ``:``; missing ones are skipped, as kubectl does)."""
    paths = [p for p in files.split(os.pathsep) if p]
    found = [p for p in paths if os.path.isfile(p)]
    if not found:
        return f"no usable kube context {context!r}: the kubeconfig {' nor '.join(paths)} does not exist"
    names: list[str] = []
    for path in found:
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except (OSError, UnicodeDecodeError) as exc:
            return f"no usable kube context {context!r}: the kubeconfig {path} cannot be read ({exc})"
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else path
            return f"{where}: not a kubeconfig: {getattr(exc, 'problem', None) or exc}"
        if data is None:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("contexts") or [], list):
            return f"{path}: not a kubeconfig (no mapping with a list of contexts)"
        names += [str(c.get("name")) for c in data.get("contexts") or [] if isinstance(c, dict)]
    if context not in names:
        have = f"it has {', '.join(sorted(set(names)))}" if names else "it has none"
        return f"no kube context {context!r} in the kubeconfig {', '.join(found)} ({have})"
    return None


def open_client(context: str, *, kubeconfig: str | None = None) -> KubeClient:
    """A client for ``context`` in the kubeconfig (``KUBECONFIG``, else ~/.kube/config)."""
    # kubernetes is imported on first use: importing it takes about 0.8 s, and every devmesh
    # command that runs environments imports this module.
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    # KUBECONFIG is read now, not when the kubernetes package was imported (which is when its
    # own default is fixed): a long-lived process, or a test, sees the value of the moment.
    files = kubeconfig or os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    problem = _kubeconfig_problem(files, context)
    if problem:
        raise KubeconfigError(problem, hint=_CONTEXT_HINT)
    try:
        api = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=files, context=context)
    except (ConfigException, OSError, TypeError, ValueError, AttributeError, KeyError) as exc:
        raise KubeconfigError(f"no usable kube context {context!r}: {exc}", hint=_CONTEXT_HINT) from None
    return KubeClient(api, context)
