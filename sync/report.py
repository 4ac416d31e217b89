"""Local views that write no ticket: `report` (one service's pack as files), `mapping preview`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from config import ConfigError, Settings
from connectors import Stream, record_links
from connectors.registry import plugin
from mapping import EntityMapping, PreviewRow, load_mappings, preview
from review import render_html, render_markdown
from sync.build import build_review, chart_name
from sync.engine import source_mappings
from sync.pull import pull
from sync.source_state import SourceStateKeeper
from sync.state import StateStore


def write_report(
    settings: Settings, store: StateStore, service_key: str, fmt: str, output: Path
) -> list[Path]:
    """Bring the mirror up to date from the source and write the service's pack and chart."""
    chosen, mappings = source_mappings(settings)
    assert chosen.source is not None
    now = datetime.now(UTC)
    skew = timedelta(seconds=settings.servicenow.clock_skew_seconds)
    source = chosen.source(settings)
    pull(source, mappings, store, until=now - skew, keeper=SourceStateKeeper())
    build = build_review(
        store, settings, today=now.date(), selection=[service_key], links=record_links(source)
    )
    if service_key not in build.packs:
        known = ", ".join(f"{s.key} ({s.name})" for s in build.services[:5])
        raise ConfigError(
            f"no service with key {service_key!r} in {settings.sync.source}",
            hint=f"use a service key such as: {known}",
        )
    output.mkdir(parents=True, exist_ok=True)
    service = next(s for s in build.services if s.key == service_key)
    title = f"Service review {build.cycle.id}: {service.name}"
    chart = chart_name(service_key)
    (output / chart).write_bytes(build.charts[service_key])
    body = build.packs[service_key].body
    page = output / f"{chart.removesuffix('.png').replace('attainment-', 'review-')}.{fmt}"
    text = (
        render_markdown(body, title=title, chart=chart)
        if fmt == "md"
        else render_html(body, title=title, chart=chart)
    )
    page.write_text(text, encoding="utf-8")
    return [page, output / chart]


def preview_records(
    settings: Settings, source: str, entity: str, limit: int
) -> tuple[list[PreviewRow], EntityMapping]:
    """A few raw records of `entity` from `source`, mapped field by field (nothing stored)."""
    chosen = plugin(source)
    if chosen.source is None:
        raise ConfigError(f"connector {source!r} cannot be a source")
    try:
        stream = Stream(entity)
    except ValueError:
        known = ", ".join(s.value for s in Stream)
        raise ConfigError(f"unknown entity {entity!r}", hint=f"one of: {known}") from None
    mapping_file = settings.sync.mapping_file if source == settings.sync.source else None
    mapping_file = mapping_file or chosen.mapping_file
    mappings = load_mappings(chosen.mapping or chosen.name, mapping_file)
    if not mappings.has(entity):
        raise ConfigError(f"the {source} mapping has no entity {entity!r}")
    records: list[dict[str, Any]] = []
    for page in chosen.source(settings).read(stream):
        records.extend(dict(r) for r in islice(page.records, limit - len(records)))
        if len(records) >= limit:
            break
    mapped = mappings.entity(entity)
    return preview(records, mapped), mapped
