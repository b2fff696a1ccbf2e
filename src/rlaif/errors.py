"""User-facing errors. Each carries a one-line message that says what to do next.

The CLI turns any RlaifError into that message on stderr and the error's exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import reprlib

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel = 2


def shown(value) -> str:
    """A short repr of a value from a user's file, for a message: never megabytes, never nested."""
    return _SHOWN.repr(value)


def first_line(e: BaseException) -> str:
    """The first line of a library's error message (some span a page), for a one-line error."""
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


class RlaifError(Exception):
    """Base class: a problem the user can fix."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InputError(RlaifError):
    """A bad input file or row; the message names file, line and field."""

    @classmethod
    def at(cls, path, line: int | None, field: str | None, problem: str) -> "InputError":
        where = str(path)
        if line is not None:
            where += f":{line}"
        if field:
            where += f": field '{field}'"
        return cls(f"{where}: {problem}")


class ConfigError(RlaifError):
    """An invalid configuration value."""


class ModelError(RlaifError):
    """A model that cannot be found or loaded."""


class MissingDependency(RlaifError):
    """An optional package is not installed; the hint is the install command."""

    def __init__(self, package: str, install: str, purpose: str):
        super().__init__(f"{purpose} needs the package '{package}', which is not installed",
                         hint=f"install it with: {install}")


class BudgetExhausted(RlaifError):
    """The run reached its token or cost budget; what was written is complete and kept."""

    exit_code = 3
