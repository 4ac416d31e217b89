"""The `slm-sync` command line (contract in DESIGN.md).

Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage. `--json` output is one JSON
object on stdout; logs and errors go to stderr. A user's mistake never shows a traceback.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, NoReturn

import structlog
import typer
from rich.console import Console
from rich.table import Table

from config import (
    ConfigError,
    Settings,
    config_path,
    load_raci,
    load_settings,
    missing_endpoints,
    required_credentials,
)
from review import RaciMatrix, Scope
from sync.logs import configure_logging

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2

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
        f"[bold red]configuration error:[/] {error.message}", markup=True
    )
    if error.hint:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"  hint: {error.hint}")
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
    lines = missing_endpoints(settings) + [
        f"{c.path} is missing: set {c.env} or write it to the file {c.secret_file}"
        for c in required_credentials(settings)
    ]
    if lines:
        raise ConfigError(
            "\n".join(lines),
            hint=f"source is {settings.sync.source}, target is {settings.sync.target}; "
            "both need an address and credentials",
        )
    return settings, raci


@app.command("check-config")
def check_config(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Validate settings and the RACI matrix, and print what was checked."""
    try:
        settings, raci = load_checked(config)
    except ConfigError as error:
        _fail_config(error)
    summary = _config_summary(settings, raci, config)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console = Console(highlight=False)
    table = Table(title="slm-sync configuration: OK", show_header=True)
    table.add_column("checked")
    table.add_column("result")
    for key, value in summary.items():
        table.add_row(key, str(value))
    console.print(table)


def _config_summary(settings: Settings, raci: RaciMatrix, config: Path | None) -> dict[str, Any]:
    roles = settings.review.roles
    return {
        "config_file": str(config_path(config) or "none: defaults and environment"),
        "source": settings.sync.source,
        "target": settings.sync.target,
        "credentials": "present for source and target",
        "state_url": settings.sync.resolved_state_url(),
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
