"""Fixtures for the sync layer: state stores on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from sync.state import StateStore, open_store

PG_URL = os.environ.get(
    "SLM_SYNC_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect():
            pass
        engine.dispose()
    except Exception:
        return False
    return True


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[StateStore]:
    """A fresh SQLite state store under a temporary data directory."""
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'state.db'}")
    yield store
    store.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL (SLM_SYNC_TEST_POSTGRES_URL), dropped afterwards."""
    if not _postgres_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_URL}; .ci/run should start it")
        pytest.skip("PostgreSQL is not reachable")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    with admin.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    """The same tests on both backends."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'state.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    opened = open_store(url)
    yield opened
    opened.close()


@pytest.fixture
def sandbox_process() -> Iterator[Callable[..., dict[str, str]]]:
    """Start `python -m sandbox serve ARGS` in its own process; returns its URLs."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> dict[str, str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "serve", *args], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None
        urls: dict[str, str] = json.loads(process.stdout.readline())
        return urls

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def cli_config(tmp_path: Path) -> Callable[..., tuple[Path, dict[str, str]]]:
    """A settings file for `slm-sync` subprocesses against a sandbox, and the env with secrets.

    The first `reviews` services are the selection; `sync` holds extra sync keys.
    """

    def write(
        urls: dict[str, str], *, reviews: int = 2, **sync: object
    ) -> tuple[Path, dict[str, str]]:
        services = requests.get(
            f"{urls['servicenow']}/api/now/table/cmdb_ci_service",
            params={"sysparm_fields": "sys_id", "sysparm_query": "sys_class_name=cmdb_ci_service"},
            auth=("u", "p"),
            timeout=10,
        ).json()["result"]
        selection = [s["sys_id"] for s in services[:reviews]]
        sync_section = {"data_dir": str(tmp_path / "data"), **sync}
        config = tmp_path / "slm-sync.yaml"
        config.write_text(
            json.dumps(
                {
                    "servicenow": {"url": urls["servicenow"], "username": "demo",
                                   "requests_per_second": 100, "clock_skew_seconds": 0},
                    "jira": {"url": urls["jira"], "email": "demo@example.com",
                             "requests_per_second": 100, "index_lag_seconds": 0.5},
                    "sync": sync_section,
                    "review": {
                        "selection": selection,
                        "roles": {"slm_process_owner": {"email": "process.owner@example.com",
                                                        "name": "Process Owner"}},
                    },
                    "logging": {"level": "INFO", "format": "json"},
                }
            )
        )  # fmt: skip
        env = dict(os.environ)
        env.update(
            SLM_SYNC_SERVICENOW__PASSWORD="demo-password", SLM_SYNC_JIRA__API_TOKEN="demo-token-1"
        )
        return config, env

    return write


def created_tickets(urls: dict[str, str]) -> list[dict[str, Any]]:
    """What the Jira sandbox holds, from its introspection endpoint."""
    found = requests.get(f"{urls['jira']}/__sandbox/created", timeout=5).json()["tickets"]
    assert isinstance(found, list)
    return found


@pytest.fixture
def jira_tickets() -> Callable[[dict[str, str]], list[dict[str, Any]]]:
    """`created_tickets` as a fixture (test modules cannot import each other)."""
    return created_tickets
