"""Running kind, docker and istioctl: argument lists (never a shell), a one-line error when a
tool is missing (with where to get it) or fails (with the tail of its output)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

from devmesh.errors import DevmeshError, MissingDependency
from devmesh.runtime.kind.layout import ISTIO_VERSION

INSTALL_HINTS = {
    "kind": "https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
    "docker": "apt-get install docker.io",
    "istioctl": f"curl -L https://istio.io/downloadIstio | ISTIO_VERSION={ISTIO_VERSION}.0 sh -",
}


class ToolFailed(DevmeshError):
    """kind, docker or istioctl exited with an error; ``output`` is all it wrote to stderr
    (stdout when stderr was empty)."""

    def __init__(self, message: str, *, hint: str | None = None, output: str = "") -> None:
        super().__init__(message, hint=hint)
        self.output = output


class Tools:
    """Runs kind, docker and istioctl with argument lists (never a shell)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)

    def path_of(self, tool: str) -> str | None:
        return shutil.which(tool, path=self.environ.get("PATH", os.defpath))

    def run(self, tool: str, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float | None = 600) -> subprocess.CompletedProcess[str]:
        path = self.path_of(tool)
        if path is None:
            raise MissingDependency(f"{tool} is not on PATH; the kind runtime needs it",
                                    hint=f"install it: {INSTALL_HINTS.get(tool, tool)}")
        try:
            done = subprocess.run([path, *args], input=stdin, capture_output=True, text=True,
                                  env=self.environ, timeout=timeout,
                                  stdin=None if stdin is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ToolFailed(f"'{tool} {' '.join(args)}' did not finish within {timeout:g} s") from None
        if check and done.returncode != 0:
            output = done.stderr or done.stdout
            tail = "\n  ".join(output.strip().splitlines()[-15:])
            raise ToolFailed(f"'{tool} {' '.join(args)}' failed with status {done.returncode}:\n  {tail}",
                             output=output)
        return done
