"""Following a build's output (the classic builder's stream): its lines as progress events, the
current step and what it printed, and a failure as an error that names the step."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from typing import Any

from devmesh.build.engine import BaseImageUnavailable, BuildFailed
from devmesh.events import BuildProgress, Sink

_OUTPUT_TAIL = 15

_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_UNUSED_ARGS_RE = re.compile(r"\[Warning\] One or more build-args \[(.*)\] were not consumed")
# The classic builder wraps a step's stderr in colour codes.
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Lines of the classic builder's own bookkeeping, not output of the step.
_NOISE_RE = re.compile(r"^( ---> |Removing intermediate container |Successfully (built|tagged) )")


_VAR_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _expand(text: str, values: Mapping[str, str]) -> str:
    """``$VAR``, ``${VAR}`` and ``${VAR:-default}`` as the builder expands them in FROM."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        value = values.get(name, "")
        if not value and m.group(2) is not None:
            return m.group(2)
        return value

    return _VAR_RE.sub(sub, text)


def _from_image(instruction: str, args: Mapping[str, str]) -> str:
    """The image a ``FROM`` instruction names, with build arguments expanded."""
    words = [w for w in instruction.split()[1:] if not w.startswith("--")]
    return _expand(words[0], args) if words else ""


class BuildLog:
    """Follows the builder's output: lines, the current step, what each step printed."""

    def __init__(self, service: str, sink: Sink, build_args: Mapping[str, str],
                 label_steps: int = 0) -> None:
        self.service = service
        # The builder runs each build-time label as one more LABEL step after the Dockerfile's
        # own; steps are counted without them, as in the user's Dockerfile.
        self.label_steps = label_steps
        self.sink = sink
        self.step: int | None = None
        self.steps: int | None = None
        self.instruction = ""
        self.step_output: deque[str] = deque(maxlen=_OUTPUT_TAIL)
        self.global_args: dict[str, str] = {}
        self.build_args = dict(build_args)
        self.seen_from = False
        self.unused_args: list[str] = []
        self._partial = ""

    def feed(self, text: str) -> None:
        text = self._partial + text
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._line(_ANSI_RE.sub("", line).rstrip("\r"))

    def flush(self) -> None:
        if self._partial:
            line, self._partial = self._partial, ""
            self._line(_ANSI_RE.sub("", line).rstrip("\r"))

    def status(self, chunk: Mapping[str, Any]) -> None:
        """A pull progress record: report its state changes, not every byte counter."""
        if chunk.get("progressDetail"):
            return
        text = " ".join(str(chunk[k]) for k in ("id", "status") if chunk.get(k))
        if text:
            self._emit(text)

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        m = _STEP_RE.match(line)
        if m:
            step, total = int(m.group(1)), int(m.group(2))
            steps = max(total - self.label_steps, 1)
            self.step, self.steps = min(step, steps), steps
            self.instruction = m.group(3).strip()
            self.step_output.clear()
            self._note_instruction(self.instruction)
            if step > steps:
                line = f"labelling the image: {self.instruction}"
            else:
                line = f"Step {step}/{steps} : {self.instruction}"
        else:
            unused = _UNUSED_ARGS_RE.search(line)
            if unused:
                self.unused_args = unused.group(1).split()
            elif not _NOISE_RE.match(line):
                self.step_output.append(line)
        self._emit(line)

    def _note_instruction(self, instruction: str) -> None:
        keyword, _, rest = instruction.partition(" ")
        if keyword.upper() == "FROM":
            self.seen_from = True
        elif keyword.upper() == "ARG" and not self.seen_from:
            for decl in rest.split():
                name, eq, default = decl.partition("=")
                self.global_args[name] = default.strip("\"'") if eq else ""

    def _emit(self, line: str) -> None:
        self.sink(BuildProgress(f"{self.service}: {line}", service=self.service,
                                step=self.step, steps=self.steps))

    @property
    def where(self) -> str:
        if self.step is None:
            return ""
        return f" at step {self.step}/{self.steps} ({_shorten(self.instruction)})"

    def failure(self, error: str) -> BuildFailed:
        error = error.strip()
        output = tuple(self.step_output)
        message = f"build of {self.service} failed{self.where}: {error}"
        if output:
            message += "\n" + "\n".join(f"    {line}" for line in output)
        kw: dict[str, Any] = dict(service=self.service, step=self.step, steps=self.steps,
                                  instruction=self.instruction, error=error, output=output)
        if self.instruction.split(" ", 1)[0].upper() == "FROM":
            args = {**self.global_args, **self.build_args}
            image = _from_image(self.instruction, args) or self.instruction
            if "BASE_IMAGE" in self.global_args:
                hint = (f"set services.{self.service}.build_args.BASE_IMAGE in devmesh.yaml "
                        "to an image this machine has (docker image ls)")
            else:
                hint = (f"build or load {image} first (docker image ls lists what this machine "
                        f"has), or make the base configurable: 'ARG BASE_IMAGE={image}' and "
                        f"'FROM ${{BASE_IMAGE}}' in the Dockerfile, then set "
                        f"services.{self.service}.build_args.BASE_IMAGE")
            message = (f"build of {self.service} failed{self.where}: base image {image} is not "
                       f"on this machine and could not be pulled: {error}")
            return BaseImageUnavailable(message, image=image, hint=hint, **kw)
        return BuildFailed(message, **kw)


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
