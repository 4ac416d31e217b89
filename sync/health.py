"""The daemon's HTTP surface: /healthz (alive), /readyz (working), /metrics (Prometheus),
`/` and `/portfolio` (the last cycle's portfolio page, GET only), and
`POST /webhooks/{jira,servicenow}` when webhooks are enabled.

Off unless `--http-port` (or `sync.http_port`) is given; nothing else listens. Readiness means
the last cycle succeeded within two intervals and the targets answered at the last check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from sync.metrics import Metrics
from sync.webhooks import WebhookReceiver

# The page may only style itself: no scripts, no fetches, no frames, no forms posting anywhere.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
PAGE_PATHS = ("/", "/portfolio")


class PageSource(Protocol):
    """Where the server takes the portfolio page from (`sync.portfolio.PortfolioPage`)."""

    @property
    def html(self) -> str | None: ...


@dataclass
class Health:
    """What /readyz decides on; the engine updates it after every cycle."""

    interval_seconds: float
    clock: Callable[[], float] = time.time
    last_success: float | None = None
    target_reachable: bool = False
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cycle_finished(self, ok: bool, *, reachable: bool, error: str | None = None) -> None:
        """Record a cycle's outcome."""
        with self._lock:
            if ok:
                self.last_success = self.clock()
            self.target_reachable = reachable
            self.last_error = error

    def ready(self) -> tuple[bool, str]:
        """(ready, reason) for /readyz."""
        with self._lock:
            if self.last_success is None:
                return False, "no successful cycle yet"
            age = self.clock() - self.last_success
            if age > 2 * self.interval_seconds:
                return False, f"last successful cycle {age:.0f}s ago (> 2 intervals)"
            if not self.target_reachable:
                return False, f"target unreachable: {self.last_error or 'unknown'}"
            return True, "ok"


class HealthServer:
    """A small threaded WSGI server for the health surface, started and stopped in-process."""

    def __init__(
        self,
        health: Health,
        metrics: Metrics,
        *,
        host: str,
        port: int,
        webhooks: WebhookReceiver | None = None,
        portfolio: PageSource | None = None,
    ) -> None:
        self.health = health
        self.portfolio = portfolio
        self.metrics = metrics
        self.webhooks = webhooks
        if webhooks is not None and metrics.on_webhook not in webhooks.observers:
            # The surface that serves the webhooks counts their refusals on its /metrics.
            webhooks.observers.append(metrics.on_webhook)
        self._server: BaseWSGIServer = make_server(host, port, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_port)

    def start(self) -> HealthServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        self._server.shutdown()
        self._thread.join(timeout=5)

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path.startswith("/webhooks/") and self.webhooks is not None:
            response = self.webhooks.respond(request)
        elif request.path in PAGE_PATHS and self.portfolio is not None:
            response = self._page(request.method)
        else:
            response = self._route(request.path)
        return response(environ, start_response)

    def _page(self, method: str) -> Response:
        """The portfolio page, read-only: GET (and HEAD) only."""
        if method not in ("GET", "HEAD"):
            return Response("method not allowed\n", status=405, headers={"Allow": "GET, HEAD"})
        assert self.portfolio is not None
        page = self.portfolio.html
        if page is None:
            return Response("no cycle has finished yet\n", status=503, mimetype="text/plain")
        return Response(page, mimetype="text/html", headers=PAGE_HEADERS)

    def _route(self, path: str) -> Response:
        if path == "/healthz":
            return Response("ok\n", mimetype="text/plain")
        if path == "/readyz":
            ready, reason = self.health.ready()
            return Response(reason + "\n", status=200 if ready else 503, mimetype="text/plain")
        if path == "/metrics":
            return Response(self.metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
        return Response("not found\n", status=404, mimetype="text/plain")
