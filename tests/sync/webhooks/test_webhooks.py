"""Authenticated webhooks: signatures, replay, size limit, switches, event filtering, logs."""

from __future__ import annotations

import copy
import hashlib
import hmac
import io
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from structlog.testing import capture_logs
from werkzeug.test import Client
from werkzeug.wrappers import Request

from config import ConfigError, load_settings
from config.settings import WebhookSettings
from sync.webhooks import (
    JIRA_PATH,
    SERVICENOW_PATH,
    WebhookReceiver,
    WorkItem,
    sign_jira,
    sign_servicenow,
)

JIRA_SECRET = "jira-webhook-secret-7f3a"
SN_SECRET = "servicenow-webhook-secret-91bc"
NOW = 1_750_000_000.0
SERVICE = "0f8ee4b1db1a3300e3e1f2b5ca9619d2"
MARKER = "Zahlungsverkehr-BODY-MARKER"
JSON_TYPE = {"Content-Type": "application/json"}

# Shaped like Jira Cloud's jira:issue_updated for a transition (developer.atlassian.com webhooks).
JIRA_TRANSITION: dict[str, Any] = {
    "timestamp": int(NOW * 1000),
    "webhookEvent": "jira:issue_updated",
    "issue_event_type_name": "issue_generic",
    "user": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Mia Krause"},
    "issue": {
        "id": "10042",
        "self": "https://example.atlassian.net/rest/api/2/10042",
        "key": "SLM-12",
        "fields": {
            "summary": f"Service review 2025: {MARKER}",
            "labels": ["slm-sync", "slm-2025-payments"],
            "status": {"name": "In Progress"},
        },
    },
    "changelog": {
        "id": "10300",
        "items": [
            {
                "field": "status",
                "fieldtype": "jira",
                "fieldId": "status",
                "from": "10000",
                "fromString": "To Do",
                "to": "10001",
                "toString": "In Progress",
            }
        ],
    },
}


class Harness:
    """A receiver with a fake clock and the queue it fills."""

    def __init__(self, **overrides: Any) -> None:
        values: dict[str, Any] = {
            "enabled": True,
            "jira_secret": JIRA_SECRET,
            "servicenow_secret": SN_SECRET,
            "max_body_bytes": 4096,
            "max_skew_seconds": 300,
        }
        values.update(overrides)
        self.now = NOW
        self.queued: list[WorkItem] = []
        self.outcomes: list[tuple[str, int, str]] = []
        self.receiver = WebhookReceiver(
            WebhookSettings.model_validate(values),
            self.queued.append,
            clock=lambda: self.now,
            observe=lambda *outcome: self.outcomes.append(outcome),
        )

    def jira(
        self, payload: dict[str, Any], *, delivery: str = "d-1", secret: str = JIRA_SECRET
    ) -> tuple[int, str]:
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature": sign_jira(secret, body),
            "X-Atlassian-Webhook-Identifier": delivery,
        }
        return self.receiver.handle(JIRA_PATH, headers, body)

    def servicenow(
        self, payload: dict[str, Any], *, sent_at: float | None = None, delivery: str = "sn-1"
    ) -> tuple[int, str]:
        body = json.dumps(payload).encode()
        stamp = str(int(self.now if sent_at is None else sent_at))
        headers = {
            **JSON_TYPE,
            "X-SLM-Signature": sign_servicenow(SN_SECRET, stamp, body),
            "X-SLM-Timestamp": stamp,
            "X-SLM-Delivery": delivery,
        }
        return self.receiver.handle(SERVICENOW_PATH, headers, body)


def _transition(**changes: Any) -> dict[str, Any]:
    payload = copy.deepcopy(JIRA_TRANSITION)
    payload.update(changes)
    return payload


def _breach(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event": "task_sla.breached",
        "table": "task_sla",
        "record": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "service": SERVICE,
    }
    payload.update(changes)
    return payload


# --- signatures -------------------------------------------------------------------------


def test_signed_jira_transition_on_our_ticket_queues_that_ticket() -> None:
    """A correctly signed transition of an slm-sync ticket answers 202 and queues its key."""
    harness = Harness()
    status, _ = harness.jira(JIRA_TRANSITION)
    assert status == 202
    assert harness.queued == [
        WorkItem("jira", "ticket", "SLM-12", NOW, event="jira:issue_updated:transitioned")
    ]


def test_bad_jira_signature_is_refused_and_changes_nothing() -> None:
    """A body signed with another secret answers 401 and queues nothing."""
    harness = Harness()
    status, reason = harness.jira(JIRA_TRANSITION, secret="guessed-secret")
    assert (status, reason) == (401, "bad signature")
    assert harness.queued == []


def test_tampered_jira_body_is_refused() -> None:
    """Changing one byte after signing breaks the signature: 401."""
    harness = Harness()
    body = json.dumps(JIRA_TRANSITION).encode()
    headers = {**JSON_TYPE, "X-Hub-Signature": sign_jira(JIRA_SECRET, body)}
    status, _ = harness.receiver.handle(JIRA_PATH, headers, body.replace(b"SLM-12", b"SLM-13"))
    assert status == 401 and harness.queued == []


@pytest.mark.parametrize(
    "header",
    [None, "", "sha256=", "sha1=" + "0" * 40, "sha256=not-hex", "sha256=" + "0" * 64],
)
def test_missing_or_malformed_jira_signature_is_refused(header: str | None) -> None:
    """No X-Hub-Signature, a wrong scheme or a malformed digest all answer 401."""
    harness = Harness()
    body = json.dumps(JIRA_TRANSITION).encode()
    headers = JSON_TYPE if header is None else {**JSON_TYPE, "X-Hub-Signature": header}
    status, _ = harness.receiver.handle(JIRA_PATH, headers, body)
    assert status == 401 and harness.queued == []


def test_header_names_are_case_insensitive() -> None:
    """Proxies lower-case header names; the signature is still found."""
    harness = Harness()
    body = json.dumps(JIRA_TRANSITION).encode()
    headers = {"content-type": "application/json", "x-hub-signature": sign_jira(JIRA_SECRET, body)}
    assert harness.receiver.handle(JIRA_PATH, headers, body)[0] == 202


def test_signed_servicenow_breach_queues_its_record_and_service() -> None:
    """A task_sla breach signed as the business rule signs it (base64) queues that record,
    with its service: the prompted cycle reads exactly that record."""
    harness = Harness()
    status, reason = harness.servicenow(_breach())
    assert (status, reason) == (202, "queued sla_record a1b2c3d4e5f60718293a4b5c6d7e8f90")
    assert harness.queued == [
        WorkItem(
            "servicenow", "sla_record", "a1b2c3d4e5f60718293a4b5c6d7e8f90", NOW,
            event="task_sla.breached", service=SERVICE,
        )
    ]  # fmt: skip


def test_breach_naming_its_task_sla_field_queues_that_record() -> None:
    """The current business rule names the record in `task_sla`."""
    harness = Harness()
    record = "0f" * 16
    status, _ = harness.servicenow({"event": "task_sla.breached", "service": SERVICE,
                                    "task_sla": record})  # fmt: skip
    assert status == 202
    assert [(i.kind, i.key, i.service) for i in harness.queued] == [("sla_record", record, SERVICE)]


@pytest.mark.parametrize(
    "extra",
    [
        {"table": None, "record": None},  # service only: the earliest shape
        {"record": "not-a-sys-id"},  # an older rule's log-only field: ignored, not refused
        {"table": "incident"},  # a record of another table is not a task_sla
    ],
)
def test_older_breach_payloads_still_queue_their_service(extra: dict[str, Any]) -> None:
    """Payloads earlier business rules sent are accepted as before: the service is re-read."""
    harness = Harness()
    payload = {k: v for k, v in _breach(**extra).items() if v is not None}
    status, _ = harness.servicenow(payload)
    assert status == 202
    assert harness.queued == [
        WorkItem("servicenow", "service", SERVICE, NOW, event="task_sla.breached")
    ]


def test_task_sla_that_is_not_a_sys_id_is_malformed() -> None:
    """A `task_sla` field is the new shape's promise: a bad value is the sender's error (400)."""
    harness = Harness()
    status, reason = harness.servicenow(_breach(task_sla="1234"))
    assert status == 400 and "'task_sla'" in reason
    assert harness.queued == []


def test_servicenow_signature_in_hex_is_accepted_too() -> None:
    """Senders that write the HMAC in hex instead of base64 are accepted."""
    harness = Harness()
    body = json.dumps(_breach(event="service.changed")).encode()
    stamp = str(int(NOW))
    digest = hmac.new(SN_SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256)
    headers = {
        **JSON_TYPE,
        "X-SLM-Signature": "sha256=" + digest.hexdigest(),
        "X-SLM-Timestamp": stamp,
    }
    assert harness.receiver.handle(SERVICENOW_PATH, headers, body)[0] == 202


def test_servicenow_timestamp_is_covered_by_the_signature() -> None:
    """Moving X-SLM-Timestamp forward to pass the freshness check breaks the signature."""
    harness = Harness()
    body = json.dumps(_breach()).encode()
    old = str(int(NOW - 3600))
    headers = {
        **JSON_TYPE,
        "X-SLM-Signature": sign_servicenow(SN_SECRET, old, body),
        "X-SLM-Timestamp": str(int(NOW)),
    }
    assert harness.receiver.handle(SERVICENOW_PATH, headers, body) == (401, "bad signature")


@pytest.mark.parametrize("missing", ["X-SLM-Signature", "X-SLM-Timestamp"])
def test_servicenow_without_signature_or_timestamp_is_refused(missing: str) -> None:
    """Both ServiceNow headers are required: without either, 401."""
    harness = Harness()
    body = json.dumps(_breach()).encode()
    stamp = str(int(NOW))
    headers = {
        **JSON_TYPE,
        "X-SLM-Signature": sign_servicenow(SN_SECRET, stamp, body),
        "X-SLM-Timestamp": stamp,
    }
    del headers[missing]
    assert harness.receiver.handle(SERVICENOW_PATH, headers, body)[0] == 401
    assert harness.queued == []


def test_jira_signature_does_not_open_the_servicenow_endpoint() -> None:
    """Each endpoint has its own secret: a Jira-signed body sent to ServiceNow's is refused."""
    harness = Harness(servicenow_secret=JIRA_SECRET + "-other")
    body = json.dumps(_breach()).encode()
    stamp = str(int(NOW))
    headers = {**JSON_TYPE, "X-SLM-Signature": sign_servicenow(JIRA_SECRET, stamp, body)}
    headers["X-SLM-Timestamp"] = stamp
    assert harness.receiver.handle(SERVICENOW_PATH, headers, body)[0] == 401


# --- replay -----------------------------------------------------------------------------


def test_same_delivery_twice_is_queued_once() -> None:
    """Jira redelivering (or an attacker replaying) the same delivery queues nothing more."""
    harness = Harness()
    assert harness.jira(JIRA_TRANSITION)[0] == 202
    assert harness.jira(JIRA_TRANSITION) == (200, "duplicate delivery ignored")
    assert len(harness.queued) == 1


def test_replay_under_a_new_delivery_id_is_still_caught() -> None:
    """The delivery id header is unsigned; the same signed body with a fresh id is a replay."""
    harness = Harness()
    harness.jira(JIRA_TRANSITION, delivery="d-1")
    assert harness.jira(JIRA_TRANSITION, delivery="forged-d-2")[1] == "duplicate delivery ignored"
    harness.servicenow(_breach(), delivery="sn-1")
    assert harness.servicenow(_breach(), delivery="sn-2")[0] == 200
    assert len(harness.queued) == 2


def test_old_timestamp_is_refused_as_replay() -> None:
    """A delivery dated beyond max_skew_seconds answers 401 and queues nothing."""
    harness = Harness()
    old_jira = _transition(timestamp=int((NOW - 301) * 1000))
    assert harness.jira(old_jira)[0] == 401
    assert harness.servicenow(_breach(), sent_at=NOW - 301)[0] == 401
    assert harness.servicenow(_breach(), sent_at=NOW + 301)[0] == 401
    assert harness.queued == []


def test_jira_event_without_timestamp_is_refused() -> None:
    """Without the payload's timestamp freshness cannot be checked: 401."""
    harness = Harness()
    payload = _transition()
    del payload["timestamp"]
    assert harness.jira(payload)[0] == 401 and harness.queued == []


def test_delivery_is_accepted_again_after_the_queue_failed() -> None:
    """If queueing fails the sender gets 503, and its retry of the same delivery is taken."""
    harness = Harness()
    calls: list[WorkItem] = []

    def flaky(item: WorkItem) -> None:
        calls.append(item)
        if len(calls) == 1:
            raise RuntimeError("queue closed")

    harness.receiver.enqueue = flaky
    assert harness.jira(JIRA_TRANSITION)[0] == 503
    assert harness.jira(JIRA_TRANSITION)[0] == 202
    assert len(calls) == 2


# --- size limit -------------------------------------------------------------------------


class _Unreadable(io.RawIOBase):
    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the body was read although Content-Length was over the limit")


class _Counting(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk


def test_body_over_the_limit_is_refused_with_413() -> None:
    """A body larger than max_body_bytes answers 413 and queues nothing."""
    harness = Harness(max_body_bytes=1024)
    big = _transition(padding="x" * 2000)
    assert harness.jira(big)[0] == 413
    assert harness.queued == []


def test_declared_oversize_body_is_refused_without_reading_it() -> None:
    """A Content-Length over the limit answers 413 before a byte of the body is read."""
    harness = Harness(max_body_bytes=1024)
    status, _ = harness.receiver.handle_stream(JIRA_PATH, JSON_TYPE, _Unreadable(), 10_000_000)
    assert status == 413


def test_undeclared_oversize_body_is_read_only_up_to_the_limit() -> None:
    """Without Content-Length (chunked), at most the limit plus one byte is read, then 413."""
    harness = Harness(max_body_bytes=1024)
    stream = _Counting(b"{" + b" " * 1_000_000 + b"}")
    status, _ = harness.receiver.handle_stream(JIRA_PATH, JSON_TYPE, stream, None)
    assert status == 413 and stream.read_bytes == 1025


# --- switches ---------------------------------------------------------------------------


def test_disabled_webhooks_answer_404() -> None:
    """With webhooks off both endpoints are absent (404), whatever is signed."""
    harness = Harness(enabled=False)
    assert harness.jira(JIRA_TRANSITION)[0] == 404
    assert harness.servicenow(_breach())[0] == 404
    assert harness.queued == [] and harness.outcomes == []


def test_endpoint_without_secret_answers_404() -> None:
    """An endpoint whose secret is not configured does not exist, so it never runs unsigned."""
    harness = Harness(servicenow_secret=None)
    assert harness.servicenow(_breach())[0] == 404
    assert harness.jira(JIRA_TRANSITION)[0] == 202


def test_unknown_path_answers_404() -> None:
    """Only /webhooks/jira and /webhooks/servicenow exist."""
    harness = Harness()
    assert harness.receiver.handle("/webhooks/github", {}, b"{}")[0] == 404


def test_enabling_webhooks_without_a_secret_is_a_config_error(tmp_path: Path) -> None:
    """webhooks.enabled without any secret is rejected at load, naming what to set."""
    config = tmp_path / "slm-sync.yaml"
    config.write_text("webhooks:\n  enabled: true\n", encoding="utf-8")
    expected = r"(?i)enabled is true but no secret.*SLM_SYNC_WEBHOOKS__JIRA_SECRET"
    with pytest.raises(ConfigError, match=expected):
        load_settings(config)


def test_webhook_secrets_come_from_secret_files_and_are_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secret file sets the webhook secret, and the log redactor knows its value."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "slm_sync_webhooks__jira_secret").write_text(JIRA_SECRET + "\n", encoding="utf-8")
    monkeypatch.setenv("SLM_SYNC_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("SLM_SYNC_WEBHOOKS__ENABLED", "true")
    config = tmp_path / "slm-sync.yaml"
    config.write_text("sync:\n  interval_seconds: 60\n", encoding="utf-8")
    settings = load_settings(config)
    assert settings.webhooks.enabled
    assert settings.webhooks.jira_secret is not None
    assert settings.webhooks.jira_secret.get_secret_value() == JIRA_SECRET
    assert JIRA_SECRET in settings.secret_values()
    assert JIRA_SECRET not in repr(settings)


# --- event filtering --------------------------------------------------------------------


def test_label_change_on_our_ticket_is_queued() -> None:
    """Labels changed on an slm-sync ticket (e.g. the LT's selection) queue the ticket."""
    harness = Harness()
    payload = _transition()
    payload["changelog"]["items"] = [
        {"field": "labels", "fromString": "slm-sync", "toString": "slm-sync select-payroll"}
    ]
    assert harness.jira(payload)[0] == 202
    assert harness.queued[0].event == "jira:issue_updated:labels"


def test_removing_our_label_still_counts_as_our_ticket() -> None:
    """Someone removing the slm-sync label is exactly a change to re-read."""
    harness = Harness()
    payload = _transition()
    payload["issue"]["fields"]["labels"] = ["other"]
    payload["changelog"]["items"] = [
        {"field": "labels", "fromString": "other slm-sync", "toString": "other"}
    ]
    assert harness.jira(payload)[0] == 202


def test_events_on_other_tickets_are_ignored() -> None:
    """An update of an issue without the slm-sync label answers 200 and queues nothing."""
    harness = Harness()
    payload = _transition()
    payload["issue"]["fields"]["labels"] = ["customer-escalation"]
    status, reason = harness.jira(payload)
    assert status == 200 and reason.startswith("ignored")
    assert harness.queued == []


@pytest.mark.parametrize(
    "changes",
    [
        {"webhookEvent": "jira:issue_created"},
        {"webhookEvent": "comment_created"},
        {"issue_event_type_name": "issue_commented", "changelog": None},
        {"changelog": {"id": "1", "items": []}},
    ],
)
def test_irrelevant_jira_events_are_ignored(changes: dict[str, Any]) -> None:
    """Creations (ours), comments and worklogs change nothing we read: 200, nothing queued."""
    harness = Harness()
    payload = _transition(**changes)
    if payload["changelog"] is None:
        del payload["changelog"]
    assert harness.jira(payload)[0] == 200
    assert harness.queued == []


def test_unknown_servicenow_event_is_ignored_and_missing_service_is_malformed() -> None:
    """An event we do not know is ignored (200); a breach without a service sys_id is 400."""
    harness = Harness()
    assert harness.servicenow(_breach(event="incident.closed"), delivery="a")[0] == 200
    assert harness.servicenow(_breach(service=""), delivery="b")[0] == 400
    assert harness.queued == []


def test_signed_body_that_is_not_json_is_malformed() -> None:
    """An authentic body that is not a JSON object answers 400."""
    harness = Harness()
    body = b"[1, 2, 3]"
    headers = {**JSON_TYPE, "X-Hub-Signature": sign_jira(JIRA_SECRET, body)}
    assert harness.receiver.handle(JIRA_PATH, headers, body)[0] == 400


# --- logs and metrics -------------------------------------------------------------------


def test_rejected_requests_are_logged_without_body_or_secret() -> None:
    """A refused request leaves a webhook.rejected event naming why, never the body or secret."""
    harness = Harness()
    with capture_logs() as logs:
        harness.jira(JIRA_TRANSITION, secret="guessed-secret")
        harness.jira(_transition(timestamp=0), delivery="old")
        harness.servicenow(_breach(note=MARKER), sent_at=NOW - 9999)
    events = [e for e in logs if e["event"] == "webhook.rejected"]
    assert events[0]["reason"] == "bad signature"
    assert len(events) == 3 and all(e["status"] == 401 for e in events)
    assert MARKER not in repr(logs)
    assert JIRA_SECRET not in repr(logs) and SN_SECRET not in repr(logs)


def test_every_answer_is_reported_to_the_observer() -> None:
    """The metrics hook sees (source, status, outcome) for each answered request."""
    harness = Harness()
    harness.jira(JIRA_TRANSITION)
    harness.jira(JIRA_TRANSITION)
    harness.servicenow(_breach(event="x"))
    assert harness.outcomes == [
        ("jira", 202, "queued"),
        ("jira", 200, "duplicate"),
        ("servicenow", 200, "ignored"),
    ]


# --- over HTTP (werkzeug) ---------------------------------------------------------------


def _client(harness: Harness) -> Client:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return harness.receiver.respond(Request(environ))(environ, start_response)

    return Client(app)


def test_http_post_is_queued_and_other_methods_are_refused() -> None:
    """Through WSGI: a signed POST answers 202; GET answers 405 with Allow: POST."""
    harness = Harness()
    client = _client(harness)
    body = json.dumps(JIRA_TRANSITION).encode()
    response = client.post(
        JIRA_PATH,
        data=body,
        headers={**JSON_TYPE, "X-Hub-Signature": sign_jira(JIRA_SECRET, body)},
    )
    assert response.status_code == 202
    assert len(harness.queued) == 1
    got = client.get(JIRA_PATH)
    assert got.status_code == 405 and got.headers["Allow"] == "POST"


def test_http_post_over_the_limit_gets_413() -> None:
    """Through WSGI: a declared body over the limit answers 413."""
    harness = Harness(max_body_bytes=1024)
    response = _client(harness).post(JIRA_PATH, data=b"x" * 5000, headers=JSON_TYPE)
    assert response.status_code == 413


# --- the documented ServiceNow scripts ----------------------------------------------------

# Stand-ins for the Glide APIs the scripts use; the HMAC is node's, keyed as ServiceNow keys it.
GLIDE_STUBS = """
const crypto = require('crypto'), fs = require('fs'), vm = require('vm');
const [nowMs, secret, service, record, ...files] = process.argv.slice(1);
const sent = [];
const ctx = {
  JSON, String, Math,
  Class: {create: () => function () { this.initialize.apply(this, arguments); }},
  gs: {
    getProperty: (name, fallback) => ({'slm_sync.webhook.url': 'https://slm/webhooks/servicenow',
                                       'slm_sync.webhook.secret': secret})[name] ?? fallback,
    warn: () => {}, generateGUID: () => crypto.randomBytes(16).toString('hex'),
  },
  GlideDateTime: function () { this.getNumericValue = () => Number(nowMs); },
  GlideStringUtil: {base64Encode: (text) => Buffer.from(text, 'utf8').toString('base64')},
  GlideCertificateEncryption: function () {
    this.generateMac = (key, algorithm, data) => crypto
      .createHmac('sha256', Buffer.from(key, 'base64')).update(data, 'utf8').digest('base64');
  },
  sn_ws: {RESTMessageV2: function () {
    const request = {headers: {}};
    this.setEndpoint = (url) => { request.url = url; };
    this.setHttpMethod = (method) => { request.method = method; };
    this.setHttpTimeout = () => {};
    this.setRequestHeader = (name, value) => { request.headers[name] = value; };
    this.setRequestBody = (body) => { request.body = body; };
    this.executeAsync = () => { sent.push(request); };
  }},
  current: {
    task: {business_service: {nil: () => false, toString: () => service}},
    getUniqueValue: () => record,
  },
  previous: null,
};
vm.createContext(ctx);
for (const file of files) vm.runInContext(fs.readFileSync(file, 'utf8'), ctx);
process.stdout.write(JSON.stringify(sent));
"""


def _run_business_rule(project_root: Path, rule: str, record: str) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: cannot run the ServiceNow scripts")
    scripts = project_root / "docs" / "servicenow"
    files = [scripts / "SlmSyncWebhook.script_include.js", scripts / rule]
    argv = [str(int(NOW * 1000)), SN_SECRET, SERVICE, record, *map(str, files)]
    done = subprocess.run(
        [node, "-e", GLIDE_STUBS, *argv], capture_output=True, text=True, timeout=30, check=True
    )
    sent = json.loads(done.stdout)
    assert isinstance(sent, list)
    return sent


@pytest.mark.parametrize(
    ("rule", "event"),
    [
        ("sla_breached.business_rule.js", "task_sla.breached"),
        ("service_changed.business_rule.js", "service.changed"),
    ],
)
def test_documented_business_rules_send_what_the_receiver_accepts(
    project_root: Path, rule: str, event: str
) -> None:
    """The business rule scripts in docs/ sign events the receiver accepts and queues."""
    record = SERVICE if event == "service.changed" else "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    [request] = _run_business_rule(project_root, rule, record)
    assert request["method"] == "post" and request["url"].endswith(SERVICENOW_PATH)
    harness = Harness()
    status, _ = harness.receiver.handle(
        SERVICENOW_PATH, request["headers"], request["body"].encode("utf-8")
    )
    assert status == 202
    if event == "service.changed":
        assert harness.queued == [WorkItem("servicenow", "service", SERVICE, NOW, event=event)]
    else:  # the breached record itself, with its service
        assert json.loads(request["body"])["task_sla"] == record
        assert harness.queued == [
            WorkItem("servicenow", "sla_record", record, NOW, event=event, service=SERVICE)
        ]


# --- deployment examples ----------------------------------------------------------------


def _deploy_settings_texts(project_root: Path) -> dict[str, str]:
    deploy = project_root / "deploy"
    manifest = list(yaml.safe_load_all((deploy / "kubernetes" / "slm-sync.yaml").read_text()))
    config_map = next(d for d in manifest if d["kind"] == "ConfigMap")
    return {
        "compose": (deploy / "slm-sync.example.yaml").read_text(encoding="utf-8"),
        "kubernetes": config_map["data"]["slm-sync.yaml"],
    }


def test_deployment_examples_load_with_their_secret_files(
    project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example settings of compose and Kubernetes load, webhooks on, secrets from files."""
    compose = yaml.safe_load((project_root / "deploy" / "compose.yaml").read_text())
    secret_names = set(compose["secrets"]) - {"postgres_password", "pg_service"}
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name in secret_names:
        (secrets / name).write_text(f"value-of-{name}\n", encoding="utf-8")
    monkeypatch.setenv("SLM_SYNC_SECRETS_DIR", str(secrets))
    for where, text in _deploy_settings_texts(project_root).items():
        config = tmp_path / f"{where}.yaml"
        config.write_text(text, encoding="utf-8")
        settings = load_settings(config)
        assert settings.webhooks.enabled, where
        assert settings.webhooks.jira_secret is not None, where
        assert settings.jira.api_token is not None and settings.servicenow.password is not None
