"""Identifiers drawn from the estate's random generator, so the same seed gives the same ids."""

from __future__ import annotations

import hashlib
import random


class IdSource:
    """Hands out ServiceNow sys_ids and Jira Cloud account ids from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def sys_id(self) -> str:
        """32 lowercase hex digits, like a ServiceNow sys_id."""
        return f"{self._rng.getrandbits(128):032x}"

    def account_id(self) -> str:
        """A Jira Cloud accountId in the current "712020:<uuid>" style."""
        raw = f"{self._rng.getrandbits(128):032x}"
        return f"712020:{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"

    @staticmethod
    def fixed(name: str) -> str:
        """A sys_id derived from a name, for records every estate has (not random on purpose)."""
        return hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
