"""The error a user's configuration mistake becomes: a message that says where, and a fix."""

from __future__ import annotations


class ConfigError(Exception):
    """Bad configuration (settings, RACI, mappings): exit code 2, never a traceback.

    `message` names the file and line or the dotted key; `hint` says what to do.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message
