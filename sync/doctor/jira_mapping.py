"""Doctor check for the JSM mapping: every Jira field the mapping file reads exists on the site.

The mapping's sources name keys of the JSM connector's raw records; each key comes from a Jira
field (`connectors.jira.jsm.RAW_SOURCES`): a system field (`priority`, `updated`), the SLA
fields, `jira.service_field` or the satisfaction field. A key the connector does not emit, or a
field the site's `/field` list lacks, is a failure naming the mapping file, its line and the
field, with the fix.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from config import ConfigError, JiraSettings
from config.yamlfile import YamlDocument, load_yaml
from connectors.jira import jsm
from mapping import shipped_mapping_path
from mapping.expressions import ExpressionError, compile_source
from sync.doctor.check import Verdict, failed, passed
from sync.doctor.jira_site import Site

NAME = "mapping fields"
SHOWN = 5


def mapping_check(site: Site) -> Verdict:
    """The configured JSM mapping (sync.mapping_file, else the shipped one) against the site."""
    path = site.settings.sync.mapping_file or shipped_mapping_path("jira")
    return mapping_fields(path, site.fields, site.jira)


def mapping_fields(path: Path, fields: list[dict[str, Any]], jira: JiraSettings) -> Verdict:
    """Every field the JSM mapping at `path` reads is one the connector emits and the site has."""
    try:
        document = load_yaml(path)
    except ConfigError as error:
        return failed(str(error), "fix the mapping file (slm-sync check-config names the line)")
    problems = [
        f"{document.where(at)}: {'.'.join(str(p) for p in at)}: {problem}"
        for at, key, entity in _sources(document)
        for problem in [_problem(entity, key, fields, jira)]
        if problem
    ]
    if problems:
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        return failed(
            "; ".join(problems[:SHOWN]) + more,
            f"edit {path} to read fields the JSM connector emits (mapping/README.md, "
            "'Raw records'), or set jira.service_field / jira.satisfaction_field to a field "
            "of this site",
        )
    return passed(f"every field {path.name} reads is on this site")


def _sources(document: YamlDocument) -> Iterator[tuple[tuple[str, ...], str, str]]:
    """(key path, raw key, entity) for each raw key each mapped field reads."""
    entities = (document.data or {}).get("entities") or {}
    for entity, spec in entities.items():
        if entity not in jsm.RAW_SOURCES or not isinstance(spec, dict):
            continue  # person: the Jira user JSON, not request fields
        entries: list[tuple[tuple[str, ...], Any]] = [(("entities", entity, "id"), spec.get("id"))]
        for name, field in (spec.get("fields") or {}).items():
            source = field.get("source") if isinstance(field, dict) else field
            entries.append((("entities", entity, "fields", name), source))
        for at, source in entries:
            if not isinstance(source, str):
                continue
            try:
                _, keys = compile_source(source)
            except ExpressionError:
                continue  # check-config reports bad expressions
            for key in keys:
                yield at, key, str(entity)


def _problem(entity: str, key: str, fields: list[dict[str, Any]], jira: JiraSettings) -> str:
    sources = jsm.RAW_SOURCES[entity]
    if key not in sources:
        emitted = ", ".join(sources)
        return f"reads {key!r}, which the JSM connector does not emit for {entity} ({emitted})"
    wanted = sources[key]
    if wanted is None or _present(wanted, fields, jira):
        return ""
    return f"reads {key!r}, which comes from {_describe(wanted, jira)}: not on this site"


def _present(wanted: str, fields: list[dict[str, Any]], jira: JiraSettings) -> bool:
    if wanted == jsm.SLA:
        return any(_custom(f) == jsm.SLA_FIELD_TYPE for f in fields)
    if wanted == jsm.SATISFACTION:
        if jira.satisfaction_field:
            return _named(jira.satisfaction_field, fields)
        return any(_custom(f) == jsm.FEEDBACK_FIELD_TYPE for f in fields)
    return _named(jira.service_field if wanted == jsm.SERVICE else wanted, fields)


def _describe(wanted: str, jira: JiraSettings) -> str:
    if wanted == jsm.SLA:
        return f"the JSM SLA fields ({jsm.SLA_FIELD_TYPE})"
    if wanted == jsm.SERVICE:
        return f"the field {jira.service_field!r} (jira.service_field)"
    if wanted == jsm.SATISFACTION:
        named = jira.satisfaction_field or jsm.FEEDBACK_FIELD_TYPE
        return f"the satisfaction field {named!r} (jira.satisfaction_field)"
    return f"the field {wanted!r}"


def _named(wanted: str, fields: list[dict[str, Any]]) -> bool:
    return any(wanted in {f.get("id"), f.get("name"), f.get("key")} for f in fields)


def _custom(field: dict[str, Any]) -> str:
    return str((field.get("schema") or {}).get("custom") or "")
