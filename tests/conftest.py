"""Shared fixtures: every test runs from a clean environment for slm-sync settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import set_testing

PROJECT_ROOT = Path(__file__).resolve().parent.parent
REFERENCE = PROJECT_ROOT.parent / "shared" / "reference"


@pytest.fixture(autouse=True)
def _clean_settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No SLM_SYNC_ variable from the developer's shell leaks into a test; no real /run/secrets."""
    for name in list(os.environ):
        if name.startswith("SLM_SYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SLM_SYNC_SECRETS_DIR", str(tmp_path / "no-secrets"))
    yield


@pytest.fixture
def project_root() -> Path:
    """The repository root (config/, sandbox/ ...)."""
    return PROJECT_ROOT


@pytest.fixture
def reference_dir() -> Path:
    """../shared/reference: official specs and recorded payloads."""
    if not REFERENCE.is_dir():
        pytest.skip("../shared/reference is not present beside the project")
    return REFERENCE


@pytest.fixture
def no_retry_waits() -> Iterator[None]:
    """Retry decisions as in production, without sleeping through their backoff."""
    set_testing(True)
    yield
    set_testing(False)
