"""`python -m sandbox serve [...]`: run both stand-ins on 127.0.0.1 until SIGTERM / SIGINT.

Prints one JSON line on stdout once both ports are bound, e.g.
`{"jira": "http://127.0.0.1:8080", "servicenow": "http://127.0.0.1:8081", "seed": 7,
"jira_flavor": "cloud"}`. Exit codes: 0 after a signal, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading
from types import FrameType

from sandbox import Sandbox
from sandbox.http.knobs import KnobError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the Jira and ServiceNow stand-ins")
    serve.add_argument("--jira-flavor", choices=("cloud", "datacenter"), default="cloud")
    serve.add_argument("--jira-port", type=int, default=0, help="0 = any free port")
    serve.add_argument("--servicenow-port", type=int, default=0, help="0 = any free port")
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--services", type=int, default=12)
    serve.add_argument("--sla-records", type=int, default=5000)
    serve.add_argument("--latency-ms", default="0", help="'40' or '40+20' (fixed + jitter)")
    serve.add_argument("--rate-limit", default=None, help="e.g. 'servicenow=20/1s,jira=10/1s'")
    serve.add_argument(
        "--faults", default=None, help="e.g. '5xx=0.05,slow=0.01,reset=0.01,short=0.2,seed=3'"
    )
    serve.add_argument("--index-lag-ms", type=float, default=300.0)
    serve.add_argument(
        "--invalid-query-returns-no-rows",
        action="store_true",
        help="ServiceNow: glide.invalid_query.returns_no_rows=true (a query naming an unknown "
        "field matches no row)",
    )
    serve.add_argument(
        "--servicenow-custom-fields",
        action="store_true",
        help="ServiceNow: a customised instance whose stock tables also serve the seeded u_ fields",
    )
    serve.add_argument(
        "--servicenow-denied-tables",
        default="",
        metavar="TABLES",
        help="ServiceNow: comma-separated tables the integration user has no read ACL on (403), "
        "e.g. sys_journal_field",
    )
    serve.add_argument(
        "--jira-subtask-name",
        default="Sub-task",
        help="the sub-task issue type's name, as a localized site shows it (e.g. Unteraufgabe)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        sandbox = Sandbox(
            seed=args.seed,
            services=args.services,
            sla_records=args.sla_records,
            jira_flavor=args.jira_flavor,
            jira_port=args.jira_port,
            servicenow_port=args.servicenow_port,
            latency_ms=args.latency_ms,
            rate_limit=args.rate_limit,
            faults=args.faults,
            index_lag_ms=args.index_lag_ms,
            jira_subtask_name=args.jira_subtask_name,
        )
    except KnobError as error:
        print(f"python -m sandbox: {error}", file=sys.stderr)
        return 2
    sandbox.knobs.update(
        {
            "invalid_query_returns_no_rows": args.invalid_query_returns_no_rows,
            "servicenow_custom_fields": args.servicenow_custom_fields,
            "servicenow_denied_tables": args.servicenow_denied_tables,
        }
    )
    # The seeded estate lives as long as the process and is never garbage: keep the collector
    # from walking its millions of objects again and again while serving (at a million SLA
    # records those walks took a sizeable share of every request).
    gc.collect()
    gc.freeze()
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with sandbox:
        urls = {"servicenow": sandbox.servicenow_url, "seed": args.seed,
                "jira_flavor": args.jira_flavor}  # fmt: skip
        if sandbox.jira_harness is not None:
            urls = {"jira": sandbox.jira_url, **urls}
        print(json.dumps(urls), flush=True)
        while not stopping.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
