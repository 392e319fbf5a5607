"""Errors a user can act on. The CLI prints them on one line and exits with their status."""

from __future__ import annotations


class DevmeshError(Exception):
    """A failure to report to the user without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UserInputError(DevmeshError):
    """Bad input: configuration, branch names, paths, repository state. Exit status 2."""

    exit_code = 2


class ConfigError(UserInputError):
    """An invalid devmesh.yaml; the message names the file, line and field."""

    def __init__(self, file: str, line: int | None, field: str | None, problem: str) -> None:
        where = f"{file}:{line}" if line else file
        text = f"{where}: {field}: {problem}" if field else f"{where}: {problem}"
        super().__init__(text)
        self.file = file
        self.line = line
        self.field = field
        self.problem = problem


class MissingDependency(DevmeshError):
    """A tool or engine the chosen runtime needs is not available."""
