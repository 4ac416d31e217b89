"""One doctor finding (`Check`) and the list a system's checks are collected into.

A `CheckList` runs each step on its own: a step that raises becomes a failed check (with the
error's hint as the fix) and the next step still runs. A failed gate (reach, auth) marks the
system's remaining checks "not checked: <reason>" instead of letting each fail on its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from config import ConfigError
from connectors import ConnectorError

NOT_CHECKED = "not checked: "
MIN_MASKED = 4


@dataclass(frozen=True)
class Check:
    """One thing `slm-sync doctor` verified about a configured system."""

    system: str  # "servicenow" | "jira" | "state"
    name: str  # "reach", "auth", "table task_sla readable", "issue type Sub-task" ...
    ok: bool
    detail: str  # what was found (never a secret)
    fix: str | None  # what to do when not ok (config key, role / permission to grant)

    @property
    def skipped(self) -> bool:
        """Whether the check could not run because an earlier one failed."""
        return not self.ok and self.detail.startswith(NOT_CHECKED)


@dataclass(frozen=True)
class Verdict:
    """What one step found: ok or not, what it saw, and the fix when not ok."""

    ok: bool
    detail: str
    fix: str | None = None


def passed(detail: str) -> Verdict:
    """A step that found what it needed."""
    return Verdict(True, detail)


def failed(detail: str, fix: str) -> Verdict:
    """A step that found a problem, with what to do about it."""
    return Verdict(False, detail, fix)


class CheckList:
    """The checks of one system, in the order they ran."""

    def __init__(self, system: str, secrets: Iterable[str] = ()) -> None:
        self.system = system
        self.checks: list[Check] = []
        # Longest first, so a secret containing another is masked whole. Very short values
        # would mask ordinary words; our texts never quote a secret, this is a second guard.
        self._secrets = sorted({s for s in secrets if len(s) >= MIN_MASKED}, key=len, reverse=True)

    def add(self, name: str, verdict: Verdict) -> bool:
        """Record a verdict; returns whether it passed."""
        check = Check(
            self.system, name, verdict.ok, self._mask(verdict.detail) or "", self._mask(verdict.fix)
        )
        self.checks.append(check)
        return check.ok

    def run(self, name: str, step: Callable[[], Verdict], *, fix: str | None = None) -> bool:
        """Run one step; any error it raises fails this check only (`fix` if it has no hint)."""
        try:
            verdict = step()
        except (ConnectorError, ConfigError) as error:
            message = error.message if isinstance(error, ConfigError) else str(error.args[0])
            verdict = Verdict(False, message, error.hint or fix)
        except Exception as error:  # a doctor reports what it cannot check, it does not crash
            verdict = Verdict(False, f"unexpected {type(error).__name__}: {error}", fix)
        return self.add(name, verdict)

    def skip(self, names: Iterable[str], reason: str) -> None:
        """Report checks that cannot run because of `reason` (an earlier failure)."""
        for name in names:
            self.checks.append(Check(self.system, name, False, NOT_CHECKED + reason, None))

    def _mask(self, text: str | None) -> str | None:
        if text is None:
            return None
        for secret in self._secrets:
            text = text.replace(secret, "****")
        return text


def unreachable(error: ConnectorError, *, url_keys: str) -> Verdict:
    """The reach verdict for a transport failure (DNS, refused, timeout, TLS)."""
    if error.hint:  # TLS: the connector's hint names http.ca_bundle
        return failed(str(error.args[0]), error.hint)
    reason = transport_reason(error)
    return failed(
        f"no answer: {reason}",
        f"check {url_keys} (host name, port, scheme) and that this host can reach it "
        "(DNS, proxy, firewall); a slow network needs a larger http.connect_timeout, "
        "an internal CA needs http.ca_bundle",
    )


def transport_reason(error: BaseException) -> str:
    """A short cause of a transport failure ("Connection refused", "timed out")."""
    cause = error.__cause__ or error.__context__
    text = str(cause or error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    if "timed out" in text.lower() or "timeout" in type(cause).__name__.lower():
        return "timed out"
    return type(cause).__name__ if cause is not None else text
