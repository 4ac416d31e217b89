"""Security: no secret in any output, TLS verified unless turned off, no port unless asked.

Every check runs the real command line (`slm-sync` in a subprocess) against an in-process
sandbox, with known secrets given through the environment and through secret files, and searches
everything the process printed (stdout and stderr) and the state it wrote. The container's
non-root user and read-only root filesystem are checked with podman by the lead, not here.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests

from config import HttpSettings, Settings
from connectors.http import new_session
from sandbox import Sandbox

SLM_SYNC = str(Path(sys.executable).with_name("slm-sync"))
SN_USER, SN_PASSWORD = "slm-integration", "sn-Pa55word-7f3c1d"
JIRA_EMAIL, JIRA_TOKEN = "slm-bot@example.com", "ATATT3xFfGF0-jira-token-9e8d7c"


def forbidden(user: str, secret: str) -> list[str]:
    """The secret and every form it takes on the wire (Basic auth, base64 of user:secret)."""
    pair = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return [secret, pair, pair.rstrip("=")]


FORBIDDEN = forbidden(SN_USER, SN_PASSWORD) + forbidden(JIRA_EMAIL, JIRA_TOKEN)


@pytest.fixture(scope="module")
def site() -> Iterator[Sandbox]:
    """A small sandbox shared by the module's runs."""
    running = Sandbox(seed=3, services=3, sla_records=200, index_lag_ms=0).start()
    yield running
    running.stop()


def _config(directory: Path, servicenow_url: str, jira_url: str, **sync: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        f"servicenow: {{url: {servicenow_url}, username: {SN_USER}, requests_per_second: 500}}",
        f"jira: {{url: {jira_url}, email: {JIRA_EMAIL}, requests_per_second: 500,",
        "       index_lag_seconds: 0.1}",
        f"sync: {{data_dir: {directory / 'data'}"
        + "".join(f", {k}: {v}" for k, v in sync.items())
        + "}",
        "review: {roles: {slm_process_owner: {email: bob.black@example.com, name: Bob Black}}}",
    ]
    path = directory / "slm-sync.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env(directory: Path, **extra: str) -> dict[str, str]:
    """Password in the environment, the Jira token in a secret file."""
    secrets = directory / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "slm_sync_jira__api_token").write_text(JIRA_TOKEN + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLM_SYNC_")}
    env.update(
        SLM_SYNC_SERVICENOW__PASSWORD=SN_PASSWORD,
        SLM_SYNC_SECRETS_DIR=str(secrets),
        COLUMNS="200",
        **extra,
    )
    return env


def _run(args: list[str], env: dict[str, str], timeout: float = 180) -> tuple[int, str]:
    done = subprocess.run(
        [SLM_SYNC, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return done.returncode, done.stdout + done.stderr


def _assert_clean(text: str) -> None:
    for secret in FORBIDDEN:
        assert secret not in text, f"a secret form ({secret[:4]}…) leaked"


def _state_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (directory / "data").rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("level", "fmt", "command"),
    [
        ("DEBUG", "json", ["sync", "--once", "--json"]),
        ("DEBUG", "console", ["sync", "--once"]),
        ("INFO", "json", ["plan", "--json"]),
        ("WARNING", "console", ["plan"]),
        ("ERROR", "json", ["check-config", "--json"]),
    ],
)
def test_no_secret_in_output_or_state_at_any_log_level(
    site: Sandbox, tmp_path: Path, level: str, fmt: str, command: list[str]
) -> None:
    """A full run at each log level prints no secret (nor its Basic-auth form) and stores none."""
    config = _config(tmp_path, site.servicenow_url, site.jira_url)
    env = _env(tmp_path, SLM_SYNC_LOGGING__LEVEL=level, SLM_SYNC_LOGGING__FORMAT=fmt)
    code, output = _run([*command, "--config", str(config)], env)
    assert code == 0, output
    if level == "DEBUG":
        assert '"level": "debug"' in output or "[debug" in output, "expected debug lines"
    _assert_clean(output)
    if (tmp_path / "data").exists():
        state = _state_bytes(tmp_path)
        assert not any(secret.encode() in state for secret in FORBIDDEN)


@pytest.mark.parametrize("system", ["servicenow", "jira"])
def test_no_secret_when_the_credential_is_rejected(
    site: Sandbox, tmp_path: Path, system: str
) -> None:
    """A 401 at DEBUG level ends the run with exit 1 and an error that names no secret."""
    rejected = SN_PASSWORD if system == "servicenow" else JIRA_TOKEN
    requests.post(
        f"{getattr(site, f'{system}_url')}/__sandbox/knobs",
        json={"rejected_password": rejected},
        timeout=5,
    ).raise_for_status()
    try:
        config = _config(tmp_path, site.servicenow_url, site.jira_url)
        env = _env(tmp_path, SLM_SYNC_LOGGING__LEVEL="DEBUG", SLM_SYNC_LOGGING__FORMAT="json")
        code, output = _run(["sync", "--once", "--config", str(config)], env)
    finally:
        requests.post(
            f"{getattr(site, f'{system}_url')}/__sandbox/knobs",
            json={"rejected_password": "wrong-password"},
            timeout=5,
        ).raise_for_status()
    assert code == 1, output
    assert "401" in output and "Traceback" not in output
    _assert_clean(output)


def test_the_demo_prints_no_secret(tmp_path: Path) -> None:
    """`slm-sync demo --json` shows neither the sandbox credentials nor their Basic-auth form."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLM_SYNC_")}
    done = subprocess.run(
        [SLM_SYNC, "demo", "--json", "--output", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    json.loads(done.stdout)
    for secret in forbidden("slm-demo", "demo-password") + forbidden(
        "slm-demo@example.com", "demo-api-token"
    ):
        assert secret not in output
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(written) >= 4, "packs in folders per service and the portfolio page"
    packs = b"".join(p.read_bytes() for p in written)
    assert b"demo-password" not in packs and b"demo-api-token" not in packs


# --- TLS ------------------------------------------------------------------------------------------


def test_tls_verification_is_on_by_default() -> None:
    """Without settings, every session verifies certificates."""
    assert Settings().http.verify_tls is True
    assert new_session(HttpSettings()).verify is True


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the sandbox counts requests itself."""


@pytest.fixture(scope="module")
def https_jira(site: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The sandbox's Jira behind HTTPS with a self-signed certificate (needs openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    key, cert = directory / "key.pem", directory / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    assert site.jira_harness is not None
    server = make_server(
        "127.0.0.1", 0, site.jira_harness, server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


def test_an_untrusted_certificate_is_refused(
    site: Sandbox, https_jira: str, tmp_path: Path
) -> None:
    """A self-signed certificate fails the run (exit 1) with a hint to set http.ca_bundle."""
    config = _config(tmp_path, site.servicenow_url, https_jira)
    code, output = _run(["plan", "--config", str(config)], _env(tmp_path))
    assert code == 1, output
    assert "TLS verification failed" in output and "ca_bundle" in output
    assert "Traceback" not in output


def _plan_without_verification(site: Sandbox, https_jira: str, tmp_path: Path) -> str:
    config = _config(tmp_path, site.servicenow_url, https_jira)
    env = _env(tmp_path, SLM_SYNC_HTTP__VERIFY_TLS="false", SLM_SYNC_LOGGING__FORMAT="json")
    code, output = _run(["plan", "--json", "--config", str(config)], env)
    assert code == 0, output
    return output


def test_turning_verification_off_works_and_warns(
    site: Sandbox, https_jira: str, tmp_path: Path
) -> None:
    """With http.verify_tls false the run goes through, and stderr warns about it."""
    output = _plan_without_verification(site, https_jira, tmp_path).lower()
    assert "unverified https request" in output or "verify_tls" in output


def test_turning_verification_off_logs_a_structured_warning(
    site: Sandbox, https_jira: str, tmp_path: Path
) -> None:
    """With http.verify_tls false, slm-sync itself logs a JSON warning naming the setting."""
    output = _plan_without_verification(site, https_jira, tmp_path)
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(e.get("level") == "warning" and "verify_tls" in json.dumps(e) for e in events), (
        output[-2000:]
    )


# --- no listening port unless asked -----------------------------------------------------------


def _listening_ports(pid: int) -> set[int]:
    """TCP ports in LISTEN state held by the sockets of process `pid` (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _daemon_ports(site: Sandbox, tmp_path: Path, extra: list[str]) -> tuple[set[int], str]:
    """Start `slm-sync run`, wait for its first cycle, read its listening ports, stop it."""
    if not Path("/proc/self/net/tcp").exists():
        pytest.skip("needs /proc (Linux)")
    config = _config(tmp_path, site.servicenow_url, site.jira_url, interval_seconds=600)
    env = _env(tmp_path, SLM_SYNC_LOGGING__FORMAT="json")
    log = tmp_path / "daemon.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [SLM_SYNC, "run", "--config", str(config), *extra], env=env, stdout=sink, stderr=sink
        )
        try:
            deadline = time.monotonic() + 120
            while '"cycle.done"' not in log.read_text() and time.monotonic() < deadline:
                assert process.poll() is None, log.read_text()
                time.sleep(0.2)
            ports = _listening_ports(process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
    assert code == 0, log.read_text()
    return ports, log.read_text()


def test_the_daemon_listens_on_no_port_by_default(site: Sandbox, tmp_path: Path) -> None:
    """`slm-sync run` without --http-port completes a cycle with no listening socket at all."""
    ports, output = _daemon_ports(site, tmp_path, [])
    assert '"cycle.done"' in output
    assert ports == set()


def test_the_daemon_listens_only_on_the_health_port_when_asked(
    site: Sandbox, tmp_path: Path
) -> None:
    """With --http-port the daemon listens on that port alone, serving /healthz."""
    port = _free_port()
    ports, output = _daemon_ports(site, tmp_path, ["--http-port", str(port)])
    assert '"cycle.done"' in output
    assert ports == {port}
