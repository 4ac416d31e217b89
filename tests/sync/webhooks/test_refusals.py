"""Refusals: re-encoded signatures, wrong content types, and rejection logs that cannot flood."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
from collections.abc import Callable, MutableMapping
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs
from werkzeug.test import Client
from werkzeug.wrappers import Request

from config.settings import WebhookSettings
from sync.metrics import Metrics
from sync.webhooks import JIRA_PATH, SERVICENOW_PATH, WebhookReceiver, WorkItem

JIRA_SECRET = "jira-webhook-secret-7f3a"
SN_SECRET = "servicenow-webhook-secret-91bc"
NOW = 1_750_000_000.0
SERVICE = "0f8ee4b1db1a3300e3e1f2b5ca9619d2"
JSON_TYPE = "application/json"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _jira_body(key: str = "SLM-12") -> bytes:
    return json.dumps(
        {
            "timestamp": int(NOW * 1000),
            "webhookEvent": "jira:issue_updated",
            "issue": {"key": key, "fields": {"labels": ["slm-sync"]}},
            "changelog": {"items": [{"field": "status", "toString": "In Progress"}]},
        }
    ).encode()


def _sn_body(record: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90") -> bytes:
    payload = {"event": "task_sla.breached", "service": SERVICE, "record": record}
    return json.dumps(payload).encode()


def _digest(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


class Harness:
    """A receiver with a settable clock, real metrics, and the queue it fills."""

    def __init__(self) -> None:
        self.now = NOW
        self.queued: list[WorkItem] = []
        self.metrics = Metrics()
        settings = WebhookSettings(
            enabled=True, jira_secret=SecretStr(JIRA_SECRET), servicenow_secret=SecretStr(SN_SECRET)
        )
        self.receiver = WebhookReceiver(
            settings, self.queued.append, clock=lambda: self.now, observe=self.metrics.on_webhook
        )

    def jira(
        self, signature: str, *, delivery: str, body: bytes | None = None, ctype: str = JSON_TYPE
    ) -> tuple[int, str]:
        headers = {
            "Content-Type": ctype,
            "X-Hub-Signature": signature,
            "X-Atlassian-Webhook-Identifier": delivery,
        }
        return self.receiver.handle(JIRA_PATH, headers, _jira_body() if body is None else body)

    def servicenow(
        self, signature: str, *, delivery: str, body: bytes | None = None, ctype: str = JSON_TYPE
    ) -> tuple[int, str]:
        headers = {
            "Content-Type": ctype,
            "X-SLM-Signature": signature,
            "X-SLM-Timestamp": str(int(NOW)),
            "X-SLM-Delivery": delivery,
        }
        body = _sn_body() if body is None else body
        return self.receiver.handle(SERVICENOW_PATH, headers, body)

    def rejections(self, source: str, reason: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "slm_sync_webhook_rejections_total", {"source": source, "reason": reason}
        )
        return value or 0.0


def _jira_digest(body: bytes | None = None) -> bytes:
    return _digest(JIRA_SECRET, _jira_body() if body is None else body)


def _sn_digest(body: bytes | None = None) -> bytes:
    return _digest(SN_SECRET, f"{int(NOW)}.".encode() + (_sn_body() if body is None else body))


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _odd_trailing_bits(digest: bytes) -> str:
    """The same 32 bytes in base64 with the two spare bits of the last character set."""
    text = _b64(digest)
    spelled = text[:42] + B64[B64.index(text[42]) | 1] + "="
    assert spelled != text and base64.b64decode(spelled) == digest  # really the same digest
    return spelled


# Every other spelling of one digest: (name, spelling).
RESPELLINGS: list[tuple[str, Callable[[bytes], str]]] = [
    ("upper-case hex", lambda d: "sha256=" + d.hex().upper()),
    ("mixed-case hex", lambda d: "sha256=" + d.hex()[:32] + d.hex()[32:].upper()),
    ("upper-case prefix", lambda d: "SHA256=" + d.hex()),
    ("capitalised prefix", lambda d: "Sha256=" + _b64(d)),
    ("upper-case prefix, base64", lambda d: "SHA256=" + _b64(d)),
    ("unpadded base64", lambda d: "sha256=" + _b64(d).rstrip("=")),
    ("double padding", lambda d: "sha256=" + _b64(d) + "="),
    ("URL-safe base64", lambda d: "sha256=" + base64.urlsafe_b64encode(d).decode()),
    ("spare bits set", lambda d: "sha256=" + _odd_trailing_bits(d)),
    ("space after prefix", lambda d: "sha256= " + d.hex()),
    ("hex with 0x", lambda d: "sha256=0x" + d.hex()),
]
JIRA_RESPELLINGS = [*RESPELLINGS, ("base64", lambda d: "sha256=" + _b64(d))]


# --- re-encoded signatures ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "spell"), JIRA_RESPELLINGS, ids=[n for n, _ in JIRA_RESPELLINGS])
def test_jira_signature_respelled_under_a_new_delivery_id_is_refused(
    name: str, spell: Callable[[bytes], str]
) -> None:
    """A captured Jira signature in any other spelling, with a fresh delivery id, is refused."""
    harness = Harness()
    assert harness.jira("sha256=" + _jira_digest().hex(), delivery="d-1")[0] == 202
    status, _ = harness.jira(spell(_jira_digest()), delivery=f"forged-{name}")
    assert status == 401
    assert len(harness.queued) == 1
    assert harness.rejections("jira", "malformed_signature") == 1


@pytest.mark.parametrize(("name", "spell"), JIRA_RESPELLINGS, ids=[n for n, _ in JIRA_RESPELLINGS])
def test_jira_accepts_only_lower_case_hex_even_for_a_first_delivery(
    name: str, spell: Callable[[bytes], str]
) -> None:
    """A correct digest in a spelling Jira never sends is malformed (401), not just a replay."""
    harness = Harness()
    status, reason = harness.jira(spell(_jira_digest()), delivery="d-1")
    assert (status, reason) == (401, "X-Hub-Signature is not sha256=<64 lowercase hex>")
    assert harness.queued == []


def test_jira_same_signature_under_a_new_delivery_id_is_a_replay() -> None:
    """The exact captured signature with a forged delivery id is a duplicate, queued once."""
    harness = Harness()
    signature = "sha256=" + _jira_digest().hex()
    assert harness.jira(signature, delivery="d-1")[0] == 202
    assert harness.jira(signature, delivery="forged-d-2") == (200, "duplicate delivery ignored")
    assert len(harness.queued) == 1
    assert harness.rejections("jira", "duplicate") == 1


@pytest.mark.parametrize(
    ("first", "second"),
    [("base64", "hex"), ("hex", "base64")],
)
def test_servicenow_digest_in_its_other_accepted_encoding_is_a_replay(
    first: str, second: str
) -> None:
    """ServiceNow accepts base64 and lower-case hex; the same digest in the other is a replay."""
    harness = Harness()
    digest = _sn_digest()
    spelled = {"base64": "sha256=" + _b64(digest), "hex": "sha256=" + digest.hex()}
    assert harness.servicenow(spelled[first], delivery="sn-1")[0] == 202
    assert harness.servicenow(spelled[second], delivery="sn-forged") == (
        200,
        "duplicate delivery ignored",
    )
    assert len(harness.queued) == 1
    assert harness.rejections("servicenow", "duplicate") == 1


@pytest.mark.parametrize(("name", "spell"), RESPELLINGS, ids=[n for n, _ in RESPELLINGS])
def test_servicenow_signature_respelled_under_a_new_delivery_id_is_refused(
    name: str, spell: Callable[[bytes], str]
) -> None:
    """Any non-canonical spelling of a captured ServiceNow digest is refused as malformed."""
    harness = Harness()
    assert harness.servicenow("sha256=" + _b64(_sn_digest()), delivery="sn-1")[0] == 202
    status, reason = harness.servicenow(spell(_sn_digest()), delivery=f"forged-{name}")
    assert status == 401 and reason.startswith("X-SLM-Signature is not sha256=")
    assert len(harness.queued) == 1


def test_a_new_delivery_is_not_mistaken_for_a_replay() -> None:
    """Two different events, each signed once, are both queued: the guard keys on the digest."""
    harness = Harness()
    other = _sn_body(record="ffffffffffffffffffffffffffffffff")
    assert harness.servicenow("sha256=" + _b64(_sn_digest()), delivery="sn-1")[0] == 202
    assert (
        harness.servicenow("sha256=" + _b64(_sn_digest(other)), delivery="sn-2", body=other)[0]
        == 202
    )
    assert len(harness.queued) == 2


# --- content type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ctype",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=iso-8859-1",
        "application/json; charset=utf-8; boundary=x",
        "application/jsonp",
        "application/json-patch+json",
        "application/json, text/plain",
        "",
    ],
)
def test_signed_body_with_another_content_type_gets_415(ctype: str) -> None:
    """A correctly signed body that is not declared application/json is refused with 415."""
    harness = Harness()
    status, _ = harness.jira("sha256=" + _jira_digest().hex(), delivery="d-1", ctype=ctype)
    assert status == 415
    assert harness.queued == []
    assert harness.rejections("jira", "unsupported_media_type") == 1


def test_missing_content_type_gets_415() -> None:
    """Without a Content-Type header at all: 415."""
    harness = Harness()
    body = _sn_body()
    headers = {"X-SLM-Signature": "sha256=" + _b64(_sn_digest()), "X-SLM-Timestamp": str(int(NOW))}
    assert harness.receiver.handle(SERVICENOW_PATH, headers, body)[0] == 415


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json; charset="utf-8"',
    ],
)
def test_json_content_types_are_accepted(ctype: str) -> None:
    """application/json, any case, optionally with charset=utf-8, is accepted."""
    harness = Harness()
    assert harness.jira("sha256=" + _jira_digest().hex(), delivery="d-1", ctype=ctype)[0] == 202


def test_wrong_content_type_is_refused_before_the_signature_or_the_body() -> None:
    """415 comes first: the body is not read and a bad signature is not even looked at."""
    harness = Harness()

    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the body was read for a wrong content type")

    headers = {"Content-Type": "text/plain", "X-Hub-Signature": "sha256=garbage"}
    status, _ = harness.receiver.handle_stream(JIRA_PATH, headers, Unreadable(), 100)
    assert status == 415
    assert harness.rejections("jira", "bad_signature") == 0
    assert harness.rejections("jira", "malformed_signature") == 0


def test_415_over_http_is_a_short_json_error() -> None:
    """Through WSGI a wrong content type answers 415 with a JSON body naming what to send."""
    harness = Harness()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return harness.receiver.respond(Request(environ))(environ, start_response)

    body = _jira_body()
    response = Client(app).post(
        JIRA_PATH,
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Hub-Signature": "sha256=" + _jira_digest(body).hex(),
        },
    )
    assert response.status_code == 415
    assert response.mimetype == "application/json"
    error = json.loads(response.get_data())
    assert error["error"] == "unsupported media type"
    assert "application/json" in error["detail"]
    assert harness.queued == []


# --- rejection logs and counters ----------------------------------------------------------


def _rejection_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [e for e in logs if e["event"] != "webhook.queued"]


def test_two_thousand_forged_requests_log_once_and_count_every_one() -> None:
    """2,000 requests with a bad signature: one log line, and the counter says 2,000."""
    harness = Harness()
    with capture_logs() as logs:
        for n in range(2000):
            harness.jira("sha256=" + "0" * 64, delivery=f"d-{n}")
    assert harness.rejections("jira", "bad_signature") == 2000
    assert [(e["event"], e["outcome"], e["suppressed"]) for e in logs] == [
        ("webhook.rejected", "bad_signature", 0)
    ]


def test_next_line_after_a_minute_carries_the_suppressed_count() -> None:
    """After a quiet minute the next rejection is logged again, saying how many were held back."""
    harness = Harness()
    with capture_logs() as logs:
        for _ in range(500):
            harness.jira("", delivery="x")
        harness.now += 59
        harness.jira("", delivery="x")
        harness.now += 1
        harness.jira("", delivery="x")
    assert [e["suppressed"] for e in logs] == [0, 500]
    assert all(e["outcome"] == "missing_signature" for e in logs)
    assert harness.rejections("jira", "missing_signature") == 502


def test_each_source_and_reason_has_its_own_allowance() -> None:
    """A flood of one kind does not hide the first refusal of another kind or source."""
    harness = Harness()
    with capture_logs() as logs:
        for n in range(300):
            harness.jira("sha256=" + "0" * 64, delivery=f"a-{n}")
            harness.jira("sha256=" + "0" * 64, delivery=f"b-{n}", ctype="text/plain")
            harness.servicenow("sha256=" + "A" * 43 + "=", delivery=f"c-{n}")
            harness.servicenow("SHA256=" + "A" * 43 + "=", delivery=f"d-{n}")
    seen = sorted((e["source"], e["outcome"]) for e in _rejection_lines(logs))
    assert seen == [
        ("jira", "bad_signature"),
        ("jira", "unsupported_media_type"),
        ("servicenow", "bad_signature"),
        ("servicenow", "malformed_signature"),
    ]
    assert harness.rejections("servicenow", "malformed_signature") == 300


def test_replays_are_rate_limited_too_and_accepted_work_is_always_logged() -> None:
    """A replay flood logs one webhook.replayed line; every queued delivery keeps its own line."""
    harness = Harness()
    signature = "sha256=" + _jira_digest().hex()
    with capture_logs() as logs:
        harness.jira(signature, delivery="d-0")
        for n in range(1, 200):
            harness.jira(signature, delivery=f"d-{n}")
        other = _jira_body(key="SLM-13")
        harness.jira("sha256=" + _jira_digest(other).hex(), delivery="new", body=other)
    events = [e["event"] for e in logs]
    assert events == ["webhook.queued", "webhook.replayed", "webhook.queued"]
    assert harness.rejections("jira", "duplicate") == 199


def test_rejection_lines_never_carry_the_body_or_the_secret() -> None:
    """What is logged is the verdict: no body, no secret, no signature value."""
    harness = Harness()
    body = _jira_body(key="SECRET-BODY-MARKER-1")
    with capture_logs() as logs:
        harness.jira("sha256=" + "1" * 64, delivery="d-1", body=body)
        harness.jira("sha256=" + "1" * 64, delivery="d-2", body=body, ctype="text/plain")
    text = repr(logs)
    assert len(logs) == 2
    assert "SECRET-BODY-MARKER" not in text and JIRA_SECRET not in text and "1" * 64 not in text
