"""Doctor checks for ServiceNow: reach, auth, each configured table readable, relation type,
(as a source) every field the mapping and the connector read against `sys_dictionary` and
whether the REST Batch API serves the integration user (each cycle's first pages in one call),
and (as the target) that work notes can be read back from `sys_journal_field`.

Every read is one `sysparm_limit=1` Table API request through the connector's own client, so
what the doctor sees is what the daemon will see. Nothing is written: the review task table is
checked for existence and read access only; write access shows on the first sync.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from config import ConfigError, Settings, env_name, secrets_dir
from connectors import AuthError, ConnectorError, Pacer, RequestRejected, RetryPolicy
from connectors.servicenow import Guard, TableClient, TableResult, build_client
from connectors.servicenow.batch import BATCH_PATH, BatchUnavailable, ListRequest
from connectors.servicenow.cmdb import AUDIT_DELETE_TABLE, AUDIT_FIELDS
from connectors.servicenow.journal import FIELDS as JOURNAL_FIELDS
from connectors.servicenow.journal import JOURNAL_TABLE
from mapping import load_mappings
from sync.doctor.check import Check, CheckList, Verdict, failed, passed, unreachable
from sync.doctor.sn_schema import Schema, check_connector, check_mapping, unreadable

SYSTEM = "servicenow"
URL_KEYS = "servicenow.url / servicenow.instance"
# Source tables the daemon reads, by settings key, and whether rows are expected in them.
SOURCE_TABLES = (
    ("services", True),
    ("components", True),
    ("relations", True),
    ("people", True),
    ("agreements", True),
    ("sla_records", True),
    ("csat", False),
    ("knowledge", False),
    ("problems", False),
)
# Plugins behind stock tables an instance may not have.
PLUGINS = {"asmt_metric_result": "Assessment", "kb_knowledge": "Knowledge Management"}
SCHEMA_CHECKS = ("mapping fields exist (sys_dictionary)", "connector fields exist (sys_dictionary)")
# As the target: people's work notes and comments (the LT's selection, decisions) are journal
# entries, read from this stock table, which needs its own read ACL.
JOURNAL_CHECK = f"work notes readable ({JOURNAL_TABLE})"
# As the source: deleted relations and services are found in this stock table (its own ACL).
DELETIONS_CHECK = f"deletions readable ({AUDIT_DELETE_TABLE})"
# As the source: each cycle's first pages are read in one REST Batch API call.
BATCH_CHECK = f"batch API usable ({BATCH_PATH})"


@dataclass(frozen=True)
class TableUse:
    """A table the configuration names, and the settings keys that name it."""

    table: str
    keys: tuple[str, ...]
    expect_rows: bool
    review_tasks: bool = False

    @property
    def check_name(self) -> str:
        return f"table {self.table} readable"


def servicenow_checks(
    settings: Settings,
    policy: RetryPolicy,
    secrets: list[str],
    client_factory: Callable[[Settings], TableClient] = build_client,
) -> list[Check]:
    """Reach, auth, table reads and relation type of `settings.servicenow`."""
    checks = CheckList(SYSTEM, secrets)
    uses = table_uses(settings)
    rest = ["auth", *(use.check_name for use in uses)]
    if settings.sync.source == SYSTEM:
        rest += [
            f"relation type {settings.servicenow.relation_type}",
            DELETIONS_CHECK,
            BATCH_CHECK,
            *SCHEMA_CHECKS,
        ]
    if settings.sync.target == SYSTEM:
        rest.append(JOURNAL_CHECK)
    try:
        client = client_factory(settings)
    except ConfigError as error:
        name = "reach" if settings.servicenow.base_url() is None else "auth"
        checks.add(name, failed(error.message, error.hint or "see config/slm-sync.example.yaml"))
        checks.skip([n for n in ["reach", *rest] if n != name], "servicenow settings incomplete")
        return checks.checks
    guard = Guard(Pacer(settings.servicenow.requests_per_second), policy, concurrency=1)
    probe = Probe(client, guard, settings)
    reach, auth = probe.reach_and_auth()
    checks.add("reach", reach)
    if not reach.ok:
        checks.skip(rest, "servicenow unreachable")
        return checks.checks
    if not checks.add("auth", auth):
        checks.skip(rest[1:], "servicenow credentials rejected")
        return checks.checks
    for use in uses:
        checks.run(use.check_name, partial(probe.table, use))
    if settings.sync.source == SYSTEM:
        checks.run(f"relation type {settings.servicenow.relation_type}", probe.relation_type)
        checks.run(DELETIONS_CHECK, probe.deletions)
        checks.run(BATCH_CHECK, probe.batch)
        _schema_checks(checks, Schema(client, guard), settings)
    if settings.sync.target == SYSTEM:
        checks.run(JOURNAL_CHECK, probe.journal)
    return checks.checks


def _schema_checks(checks: CheckList, schema: Schema, settings: Settings) -> None:
    """The mapping's and the connector's fields against sys_dictionary."""
    mapping_check, connector_check = SCHEMA_CHECKS
    try:
        mapping = load_mappings(SYSTEM, settings.sync.mapping_file)
    except ConfigError as error:
        checks.add(mapping_check, failed(error.message, error.hint or "fix the mapping file"))
    else:
        checks.run(mapping_check, partial(_guarded, check_mapping, schema, mapping, settings))
    checks.run(connector_check, partial(_guarded, check_connector, schema, settings))


def _guarded(step: Callable[..., Verdict], *args: object) -> Verdict:
    try:
        return step(*args)
    except AuthError as error:
        return unreadable(error)


def table_uses(settings: Settings) -> list[TableUse]:
    """The tables the configured roles of ServiceNow (source, target) read, once each."""
    tables = settings.servicenow.tables
    wanted: list[tuple[str, bool, bool]] = []
    if settings.sync.source == SYSTEM:
        wanted += [(key, expect, False) for key, expect in SOURCE_TABLES]
    if settings.sync.target == SYSTEM:
        wanted += [("review_tasks", False, True), ("people", True, False)]
    uses: dict[str, TableUse] = {}
    for key, expect, review in wanted:
        table = str(getattr(tables, key))
        setting = f"servicenow.tables.{key}"
        known = uses.get(table)
        if known is None:
            uses[table] = TableUse(table, (setting,), expect, review)
        elif setting not in known.keys:
            uses[table] = TableUse(
                table, (*known.keys, setting), known.expect_rows, known.review_tasks or review
            )
    return list(uses.values())


class Probe:
    """One-row reads against the instance through the connector's client and guard."""

    def __init__(self, client: TableClient, guard: Guard, settings: Settings) -> None:
        self.client = client
        self.guard = guard
        self.settings = settings.servicenow

    def _list(
        self, table: str, query: str = "", fields: tuple[str, ...] = ("sys_id",)
    ) -> TableResult:
        return self.guard.call(
            lambda: self.client.list(table, query=query, fields=fields, limit=1),
            what=f"table {table}",
        )

    def reach_and_auth(self) -> tuple[Verdict, Verdict]:
        """One read of the people table tells both: did it answer, were we let in."""
        url = self.settings.base_url() or ""
        people = self.settings.tables.people
        user = self.settings.username or ""
        query = f"user_name={user}" if user and self.settings.oauth_token is None else ""
        if "^" in query:  # a caret would split the encoded query: read without the filter
            query = ""
        try:
            self._list(people, query)
        except AuthError as error:
            # 401: the credentials; 403: they worked, the table's ACL said no.
            if "answered 401" in str(error):
                bearer = self.settings.oauth_token is not None
                return passed(f"{url} answered (401)"), failed(
                    f"the instance rejected the {_credential(bearer)}", _auth_fix(bearer)
                )
            return passed(f"{url} answered"), passed(
                f"{_identity(user)} accepted (no read access to {people}: see its check)"
            )
        except RequestRejected as error:
            return passed(f"{url} answered"), failed(str(error.args[0]), _rest_fix())
        except ConnectorError as error:
            return unreachable(error, url_keys=URL_KEYS), failed("not reached", "")
        return passed(f"{url} answered"), passed(f"{_identity(user)} accepted")

    def table(self, use: TableUse) -> Verdict:
        """The table exists and one row can be read."""
        keys = " / ".join(use.keys)
        try:
            rows = self._list(use.table).records
        except RequestRejected as error:
            plugin = PLUGINS.get(use.table)
            needs = f" (it comes with the {plugin} plugin)" if plugin else ""
            return failed(
                f"{use.table} does not exist on this instance ({error.status}){needs}",
                f"set {keys} to the table your instance uses{needs}",
            )
        if use.review_tasks:
            return passed(
                f"{use.table} exists and is readable; write access (create, usually the itil "
                f"role) is checked on the first sync"
            )
        if not rows and use.expect_rows:
            return passed(f"readable, but no rows visible ({keys}): empty, or ACLs hide its rows")
        return passed(f"readable ({keys})")

    def journal(self) -> Verdict:
        """The integration user can read journal entries (work notes, comments)."""
        why = "the LT's selection notes and the decisions people record in work notes"
        try:
            self._list(JOURNAL_TABLE, "element=work_notes", JOURNAL_FIELDS)
        except AuthError:
            return failed(
                f"the integration user may not read {JOURNAL_TABLE}: {why} cannot be read",
                f"grant the integration user's role read access to {JOURNAL_TABLE} (all "
                "fields); without it, set review.selection (decisions are then not read)",
            )
        return passed(f"readable: {why} are read back every cycle")

    def deletions(self) -> Verdict:
        """The integration user can read deletion audits (relations and services removed)."""
        rewalk = self.settings.cmdb_rewalk_seconds
        try:
            self._list(AUDIT_DELETE_TABLE, "tablename=cmdb_rel_ci", AUDIT_FIELDS)
        except AuthError:
            later = (
                f"within servicenow.cmdb_rewalk_seconds ({rewalk} s), at the next full walk"
                if rewalk
                else "never (servicenow.cmdb_rewalk_seconds is 0)"
            )
            return failed(
                f"the integration user may not read {AUDIT_DELETE_TABLE}: a removed relation "
                f"or service leaves the reviews only {later}",
                f"grant the integration user's role read access to {AUDIT_DELETE_TABLE}, or "
                "lower servicenow.cmdb_rewalk_seconds",
            )
        return passed("readable: removed relations and services leave the walk every cycle")

    def batch(self) -> Verdict:
        """Whether one-row reads sent through the REST Batch API come back (see
        `connectors.servicenow.batch`): an idle cycle is then one call, not one per table."""
        if not self.settings.batch_reads:
            return passed(
                "not used (servicenow.batch_reads is false): each stream's first page is read "
                "with a call of its own"
            )
        send = getattr(self.client, "batch_list", None)
        if not callable(send):
            return passed("not used: this client reads call by call")
        request = ListRequest(self.settings.tables.people, "", ("sys_id",), 1)
        try:
            answer = self.guard.call(lambda: send([request]), what=BATCH_PATH)
        except BatchUnavailable as error:
            return failed(
                f"the instance answered {error.status} for {BATCH_PATH}: every cycle reads each "
                "table with a call of its own (an idle cycle: about 9 calls instead of 1)",
                "an instance older than London has no Batch API; otherwise let the "
                f"integration user's role call {BATCH_PATH} (REST API ACLs), or set "
                "servicenow.batch_reads: false",
            )
        if request not in answer.answers:
            return failed(
                f"{BATCH_PATH} answered without serving the read (unserviced): its limits "
                "(glide.rest.batch.max.outputSize, the REST Batch API request timeout) are too low",
                "raise the instance's Batch API limits, or set servicenow.batch_reads: false",
            )
        return passed("usable: each cycle's first pages are read in one call")

    def relation_type(self) -> Verdict:
        """The configured CMDB relation type exists (the component walk follows it)."""
        name = self.settings.relation_type
        if "^" in name:
            return failed(
                f"relation type {name!r} contains '^', which an encoded query cannot hold",
                "set servicenow.relation_type to the relation type's name without '^'",
            )
        rows = self._list("cmdb_rel_type", f"name={name}", ("sys_id", "name")).records
        if not rows:
            return failed(
                f"no cmdb_rel_type named {name!r}",
                "set servicenow.relation_type to a relation type of your CMDB "
                "(e.g. 'Depends on::Used by')",
            )
        return passed(f"{name!r} found")


def _credential(bearer: bool) -> str:
    return "OAuth bearer token" if bearer else "user name and password"


def _identity(user: str) -> str:
    return f"user {user}" if user else "bearer token"


def _auth_fix(bearer: bool) -> str:
    secret = ("servicenow", "oauth_token") if bearer else ("servicenow", "password")
    variable = env_name(secret)
    who = "" if bearer else "servicenow.username and "
    return (
        f"check {who}the secret in {variable} (or the secret file "
        f"{_secret_file(variable)}); the account must be active and allowed web service access"
    )


def _secret_file(variable: str) -> str:
    return str(secrets_dir() / variable.lower())


def _rest_fix() -> str:
    return (
        f"check {URL_KEYS} points at the instance itself (https://<instance>.service-now.com), "
        "not a proxy page or SSO portal"
    )
