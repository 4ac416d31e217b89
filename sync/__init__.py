"""The daemon: CLI, logging, and (with their issues) the state store, engine and HTTP surface."""

from __future__ import annotations

__all__: list[str] = []
