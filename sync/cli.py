"""The `slm-sync` command line (contract in DESIGN.md).

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage. `--json` output is one JSON
object on stdout; logs and errors go to stderr. A user's mistake never shows a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from config import (
    ConfigError,
    Settings,
    config_path,
    env_name,
    load_raci,
    load_settings,
    missing_endpoints,
    required_credentials,
)
from connectors import ConnectorError, observe_retries
from connectors.http import observe_calls
from mapping import preview_as_json, render_preview
from review import RaciMatrix, Scope
from sync.daemon import Daemon
from sync.demo import DemoResult, run_demo, ticket_tree
from sync.doctor import checks_as_json, render_checks, run_doctor
from sync.engine import Engine, RunResult, dumps, source_mappings
from sync.health import Health, HealthServer
from sync.logs import Redactor, configure_logging
from sync.metrics import Metrics
from sync.portfolio import PAGE_NAME, PortfolioPage, write_portfolio
from sync.progress import TerminalProgress
from sync.report import preview_records, write_report
from sync.state import StateStore, open_store
from sync.webhooks import WebhookReceiver

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
DEMO_SOURCES = ("servicenow", "jira")

app = typer.Typer(
    name="slm-sync",
    help="Run the IT Service Level Management review process inside Jira and ServiceNow.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = structlog.get_logger("slm_sync.cli")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="settings file (default: $SLM_SYNC_CONFIG, else the first that exists of "
        "./config/slm-sync.yaml and /etc/slm-sync/slm-sync.yaml)",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")]


def package_version() -> str:
    """The installed distribution's version."""
    try:
        return version("slm-sync")
    except PackageNotFoundError:
        return "0+unknown"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"slm-sync {package_version()}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Run the IT Service Level Management review process inside Jira and ServiceNow."""


def _fail_config(error: ConfigError) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"[bold red]configuration error:[/] {escape(error.message)}", markup=True
    )
    if error.hint:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"  hint: {escape(error.hint)}")
    raise typer.Exit(EXIT_CONFIG)


def load_checked(config: Path | None) -> tuple[Settings, RaciMatrix]:
    """Settings and RACI matrix, validated; configures logging from the settings."""
    settings = load_settings(config)
    configure_logging(
        level=settings.logging.level,
        fmt=settings.logging.format,
        secrets=settings.secret_values(),
    )
    raci = load_raci(settings.review.raci_file)
    lines = missing_endpoints(settings) + [c.advice() for c in required_credentials(settings)]
    if lines:
        raise ConfigError(
            "\n".join(lines),
            hint=f"source is {settings.sync.source}, target is {settings.sync.target}; "
            "both need an address and credentials",
        )
    return settings, raci


@app.command("check-config")
def check_config(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Validate settings, the RACI matrix and the source mapping; print what was checked."""
    try:
        settings, raci = load_checked(config)
    except ConfigError as error:
        _fail_config(error)
    try:
        _, mappings = source_mappings(settings)
    except ConfigError as error:
        _fail_config(error)
    summary = _config_summary(settings, raci, config)
    summary["mapping"] = f"{mappings.path} ({len(mappings.entities)} entities)"
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = Console(highlight=False)
    table = Table(title="slm-sync configuration: OK", show_header=True)
    table.add_column("checked")
    table.add_column("result")
    for key, value in summary.items():
        table.add_row(escape(key), escape(str(value)))
    console.print(table)


def _config_summary(settings: Settings, raci: RaciMatrix, config: Path | None) -> dict[str, Any]:
    roles = settings.review.roles
    return {
        "config_file": str(config_path(config) or "none: defaults and environment"),
        "source": settings.sync.source,
        "target": settings.sync.target,
        "credentials": "present for source and target",
        "state_url": settings.sync.redacted_state_url(),
        "raci_file": str(settings.review.raci_file or "shipped seed matrix"),
        "raci_activities": len(raci.activities),
        "cycle_activities": len(raci.in_scope(Scope.CYCLE)),
        "service_activities": len(raci.in_scope(Scope.SERVICE)),
        "slm_process_owner": roles.slm_process_owner.email if roles.slm_process_owner else None,
        "service_catalog_owner": (
            roles.service_catalog_owner.email if roles.service_catalog_owner else None
        ),
        "lt_members": len(roles.lt_members),
        "cycle": f"{settings.review.cycle.frequency} from {settings.review.cycle.start}",
    }


def _open(config: Path | None) -> tuple[Settings, StateStore]:
    """Checked settings and the open state store; a store that cannot open exits 1, clearly."""
    settings, _ = load_checked(config)
    try:
        return settings, open_store(settings.sync.resolved_state_url())
    except (SQLAlchemyError, OSError) as error:
        cause = getattr(error, "orig", None) or error
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        first_line = Redactor(settings.secret_values()).scrub(first_line)
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]state store failed:[/] {escape(settings.sync.redacted_state_url())} "
            f"cannot be opened: {escape(first_line)}\n  hint: check sync.state_url "
            f"({env_name(('sync', 'state_url'))}) and that the database is up; "
            "`slm-sync doctor` checks it"
        )
        raise typer.Exit(EXIT_FAILURE) from None


def _engine(settings: Settings, store: StateStore, metrics: Metrics | None = None) -> Engine:
    return Engine.from_settings(settings, store, metrics=metrics)


def _run_guarded(action: Callable[[], int]) -> None:
    """Run a command body: config mistakes exit 2, system failures 1, never with a traceback."""
    try:
        code = action()
    except ConfigError as error:
        _fail_config(error)
    except ConnectorError as error:
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"[bold red]{escape(error.system or 'connector')} failed:[/] {escape(str(error))}"
        )
        raise typer.Exit(EXIT_FAILURE) from None
    raise typer.Exit(code)


def _print_outcomes(result: RunResult, *, title: str) -> None:
    console = Console(highlight=False)
    table = Table(title=title)
    for column in ("action", "ticket", "kind", "title", "assignee"):
        table.add_column(column)
    for outcome in result.summary.outcomes:
        table.add_row(
            outcome.action.value + (" (failed)" if outcome.error else ""),
            escape(outcome.ticket or "-"),
            escape(outcome.kind),
            escape(outcome.title),
            escape(outcome.assignee or "-"),
        )
    console.print(table)
    counts = result.summary.as_counts()
    console.print(
        f"cycle {result.build.cycle.id} ({result.phase.state.value}): "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
    )
    for failure in result.summary.failed:
        console.print(f"[red]failed[/] {escape(failure.key)}: {escape(str(failure.error))}")


def _one_cycle(config: Path | None, *, as_json: bool, title: str, **options: bool) -> int:
    """Run one engine cycle and print its summary (table, or JSON)."""
    settings, store = _open(config)
    engine = _engine(settings, store)
    try:
        with ExitStack() as shown:
            if sys.stderr.isatty():  # bars on a terminal; JSON logs elsewhere
                bars = shown.enter_context(TerminalProgress())
                engine.on_page, engine.on_write = bars.page, bars.written
            result = engine.run_once(**options)
    finally:
        store.close()
    if as_json:
        typer.echo(dumps(result.as_json()))
    else:
        _print_outcomes(result, title=title)
    return EXIT_OK if not result.summary.failed else EXIT_FAILURE


@app.command("plan")
def plan_command(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Dry run: the tickets a sync would create or update now. Writes nothing to the target."""
    title = "slm-sync plan (dry run, nothing written)"
    _run_guarded(lambda: _one_cycle(config, as_json=as_json, title=title, dry_run=True))


@app.command("sync")
def sync_command(
    once: Annotated[bool, typer.Option("--once", help="run one cycle and exit")] = False,
    full: Annotated[bool, typer.Option("--full", help="re-read everything (full resync)")] = False,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """One sync cycle: read, plan, create / update tickets, print the summary."""
    if not once:
        Console(stderr=True, highlight=False, soft_wrap=True, markup=False).print(
            "sync needs --once; use `slm-sync run` for the daemon loop"
        )
        raise typer.Exit(EXIT_CONFIG)
    _run_guarded(lambda: _one_cycle(config, as_json=as_json, title="slm-sync sync", full=full))


HttpPortOption = Annotated[
    int | None,
    typer.Option(
        "--http-port", help="serve /healthz, /readyz, /metrics and the portfolio page (/)"
    ),
]


@app.command("run")
def run_command(
    config: ConfigOption = None,
    http_port: HttpPortOption = None,
    http_host: Annotated[str | None, typer.Option("--http-host")] = None,
) -> None:
    """The daemon: a cycle every sync.interval_seconds until SIGTERM / SIGINT."""

    def body() -> int:
        settings, store = _open(config)
        metrics = Metrics()
        observe_calls(metrics.on_call)
        observe_retries(metrics.on_retry)
        health = Health(interval_seconds=settings.sync.interval_seconds)
        port = http_port if http_port is not None else settings.sync.http_port
        page = PortfolioPage(settings) if port is not None else None
        daemon = Daemon(
            _engine(settings, store, metrics), settings.sync.interval_seconds, health, metrics,
            portfolio=page,
        )  # fmt: skip
        receiver = None
        if settings.webhooks.enabled:
            receiver = WebhookReceiver(settings.webhooks, daemon.enqueue)
            if port is None:
                raise ConfigError(
                    "webhooks.enabled is true but no HTTP port is set",
                    hint="set sync.http_port or pass --http-port",
                )
        server = None
        if port is not None:
            host = http_host or settings.sync.http_host
            server = HealthServer(
                health, metrics, host=host, port=port, webhooks=receiver, portfolio=page
            )
            server.start()
            log.info("http.listening", host=host, port=server.port, webhooks=receiver is not None)
        daemon.install_signal_handlers()
        try:
            return daemon.run()
        finally:
            if server is not None:
                server.stop()
            store.close()

    _run_guarded(body)


@app.command("demo")
def demo_command(
    as_json: JsonOption = False,
    output: Annotated[Path, typer.Option("--output", help="where packs are written")] = Path(
        "demo-output"
    ),
    source: Annotated[
        str, typer.Option("--source", help="servicenow, or jira (the sandbox's JSM project)")
    ] = "servicenow",
) -> None:
    """The whole product on a local sandbox: two syncs, the second changing nothing."""
    if source not in DEMO_SOURCES:
        Console(stderr=True, highlight=False, soft_wrap=True, markup=False).print(
            f"--source must be servicenow or jira, not {source!r}"
        )
        raise typer.Exit(EXIT_CONFIG)
    try:  # before the walk: the packs are written at its end, a folder per service
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        Console(stderr=True, highlight=False, soft_wrap=True, markup=False).print(
            f"--output {output}: cannot use it as a folder ({error})"
        )
        raise typer.Exit(EXIT_CONFIG) from None

    def body() -> int:
        configure_logging(level="WARNING", fmt="json" if as_json else "auto")
        result = run_demo(output, source=source)
        if as_json:
            typer.echo(dumps(result.as_json()))
            return EXIT_OK
        _print_demo(result)
        return EXIT_OK

    _run_guarded(body)


def _print_demo(result: DemoResult) -> None:
    console = Console(highlight=False)
    first, second = result.first, result.second
    cycle = first.build.cycle.id
    origin = "JSM (Jira Cloud)" if result.source == "jira" else "ServiceNow"
    console.print(f"[bold]slm-sync demo[/]: {origin} sandbox → Jira Cloud sandbox, cycle {cycle}")
    names = {s.key: s.name for s in first.build.services}
    for number, step in enumerate(result.steps, 1):
        counts = ", ".join(f"{k} {v}" for k, v in step.counts.items())
        chosen = escape(", ".join(names.get(k, k) for k in step.selection))
        console.print(
            f"{number}. {escape(step.what)} — cycle [bold]{step.cycle_state}[/]"
            + (f"; selected: {chosen}" if chosen else "")
            + (f" ({counts})" if counts else "")
        )
    console.print(ticket_tree(first))
    again = second.summary.as_counts()
    if again["created"] or again["updated"]:
        console.print("[yellow]the last sync changed tickets: it should have changed nothing[/]")
    console.print(f"review packs written to {escape(str(result.output_dir))}/ (open review.html):")
    for key, folder in result.folders.items():
        console.print(f"  {escape(result.names.get(key, key))}: {escape(str(folder))}/")
    console.print(f"portfolio page: {escape(str(result.output_dir / PAGE_NAME))}")


@app.command("report")
def report_command(
    service: Annotated[
        str | None, typer.Option("--service", help="service key (e.g. its sys_id)")
    ] = None,
    portfolio: Annotated[
        bool,
        typer.Option("--portfolio", help="every service and the cycle's progress: portfolio.html"),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="md or html")] = "md",
    output: Annotated[Path, typer.Option("--output", help="directory for the files")] = Path("."),
    config: ConfigOption = None,
) -> None:
    """Render one service's review pack (with its chart), or with --portfolio the portfolio
    page, locally from the configured source (nothing is written to the target)."""
    if portfolio == (service is not None):
        Console(stderr=True, highlight=False, soft_wrap=True, markup=False).print(
            "give either --service KEY or --portfolio"
        )
        raise typer.Exit(EXIT_CONFIG)
    if fmt not in ("md", "html"):
        Console(stderr=True, highlight=False, soft_wrap=True, markup=False).print(
            f"--format must be md or html, not {fmt!r}"
        )
        raise typer.Exit(EXIT_CONFIG)

    def body() -> int:
        settings, store = _open(config)
        try:
            if service is None:
                written = [write_portfolio(settings, store, output)]
            else:
                written = write_report(settings, store, service, fmt, output)
        finally:
            store.close()
        for path in written:
            typer.echo(str(path))
        return EXIT_OK

    _run_guarded(body)


@app.command("doctor")
def doctor_command(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Check reach, auth, permissions, project / tables / issue types / fields, with fixes."""

    def body() -> int:
        settings = load_settings(config)
        configure_logging(level=settings.logging.level, fmt=settings.logging.format,
                          secrets=settings.secret_values())  # fmt: skip
        checks = run_doctor(settings)
        report = checks_as_json(checks)
        if as_json:
            typer.echo(dumps(report))
        else:
            render_checks(checks, Console(highlight=False))
        return EXIT_OK if report["ok"] else EXIT_FAILURE

    _run_guarded(body)


mapping_app = typer.Typer(help="Inspect field mappings.", no_args_is_help=True)
app.add_typer(mapping_app, name="mapping")


@mapping_app.command("preview")
def mapping_preview(
    source: Annotated[str, typer.Option("--source", help="servicenow or jira")],
    entity: Annotated[str, typer.Option("--entity", help="e.g. service, sla_record")],
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 5,
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch a few raw records and show them next to what the mapping makes of them."""

    def body() -> int:
        settings = load_settings(config)
        configure_logging(level=settings.logging.level, fmt=settings.logging.format,
                          secrets=settings.secret_values())  # fmt: skip
        rows, mapped_entity = preview_records(settings, source, entity, limit)
        if as_json:
            typer.echo(dumps(preview_as_json(mapped_entity, rows)))
        else:
            render_preview(mapped_entity, rows, Console())
        return EXIT_OK

    _run_guarded(body)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code instead of raising it."""
    try:
        # Standalone mode: typer prints usage errors and exits 2, as our contract wants.
        app(args=argv, prog_name="slm-sync")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else EXIT_FAILURE
    except ConfigError as error:
        try:
            _fail_config(error)
        except typer.Exit as done:
            return done.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # a runtime failure: say what, keep the traceback in debug logs
        log.debug("cli.crashed", exc_info=True)
        print(f"slm-sync: failed: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
