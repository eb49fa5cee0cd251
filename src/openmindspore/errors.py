"""User-facing errors: each names the field, the value, what was expected and the fix."""

from __future__ import annotations

__all__ = ["OMSError", "ConfigError"]


class OMSError(Exception):
    """An error caused by user input or environment; the CLI prints it as one line and exits 2."""


class ConfigError(OMSError, ValueError):
    """A bad configuration value: ``field=value`` is not ``expected``; ``fix`` says what to do."""

    def __init__(self, field: str, value: object, expected: str, fix: str = "") -> None:
        self.field, self.value, self.expected, self.fix = field, value, expected, fix
        msg = f"{field}={value!r} is invalid: expected {expected}"
        if fix:
            msg += f"; {fix}"
        super().__init__(msg)
