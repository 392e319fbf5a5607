"""The errors a cluster request ends in, and how a request that got no answer becomes one.

``ClusterError`` is a refusal (with the HTTP status), ``ClusterUnreachable`` no answer at all,
``KubeconfigError`` a context that cannot be read (the user's input), ``ApplyConflict`` fields
another manager owns. ``unreachable`` turns a transport failure into one line.
"""

from __future__ import annotations

import ssl

from devmesh.errors import DevmeshError


class ClusterError(DevmeshError):
    """The cluster refused a request; ``status`` is the HTTP status (0 when it never answered)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "",
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason


class ClusterUnreachable(ClusterError):
    """The API server of the context does not answer, or the context does not exist.

    ``server`` names the API server ("the API server of context 'x' (https://…)") and ``why``
    says in a few words what happened ("connection refused"), so that a caller can say the
    same in its own sentence (see devmesh.runtime.kind.progress); both are empty when no
    request was sent.
    """

    def __init__(self, message: str, *, hint: str | None = None, server: str = "", why: str = "") -> None:
        super().__init__(message, hint=hint)
        self.server = server
        self.why = why


class KubeconfigError(ClusterUnreachable):
    """The kubeconfig, or the context named in it, does not exist or cannot be used: the
    user's input, so exit status 2."""

    exit_code = 2


class ApplyConflict(ClusterError):
    """Server-side apply found fields another manager owns (only when not forcing)."""


def _cause(exc: BaseException) -> BaseException:
    """The innermost error urllib3 wraps (its retries wrap the real one, several levels deep)."""
    seen = exc
    while True:
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = seen.__cause__ or seen.__context__
        if not isinstance(inner, BaseException) or inner is seen:
            return seen
        seen = inner


def unreachable(context: str, host: str, exc: BaseException) -> ClusterUnreachable:
    """One line for a request that got no answer: refused, not trusted, timed out, or other."""
    cause = _cause(exc)
    where = f"the API server of context {context!r} ({host})"
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or "certificate verify failed"
        return ClusterUnreachable(
            f"{where} presented a certificate the kubeconfig does not trust ({why})",
            hint="the kubeconfig's certificate-authority is not the one that signed the server's "
                 "certificate: is it the right cluster, or a cluster created again since?",
            server=where, why=f"a certificate the kubeconfig does not trust: {why}")
    if isinstance(cause, ssl.SSLError):
        return ClusterUnreachable(f"{where}: the TLS handshake failed ({cause.reason or cause})",
                                  hint="is that address an API server?", server=where,
                                  why=f"TLS handshake failed: {cause.reason or cause}")
    if isinstance(cause, ConnectionRefusedError) or "Connection refused" in str(cause):
        return ClusterUnreachable(f"{where} does not answer: connection refused",
                                  hint="is it running? 'devmesh cluster status' shows each part",
                                  server=where, why="connection refused")
    if "timed out" in str(cause).lower():
        return ClusterUnreachable(f"{where} did not answer in time", hint="is it running, and reachable from here?",
                                  server=where, why="timed out")
    return ClusterUnreachable(f"cannot reach {where}: {cause}",
                              hint="is it running? 'devmesh cluster status' shows each part",
                              server=where, why=str(cause))
