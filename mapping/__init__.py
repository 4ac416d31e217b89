"""Raw records -> review model, driven by admin-tunable `config/mappings/<system>.yaml`.

Mappings are compiled once (`load_mappings`) and applied per record with no parsing: plain field
names read the dict directly, other sources run compiled JMESPath, transforms come from a fixed
registry (`TRANSFORMS`). Bad data in one record skips that record as a `review.SkippedRecord`;
bad configuration is a `config.ConfigError` naming file, line and key.

    mappings = load_mappings("servicenow")
    records = mappings.map("sla_record", rows)           # MapResult: entities, skipped, excluded
    people = mappings.map("person", user_rows).by_id(Person)
    services = assemble(drafts, component_drafts, people, skipped=report)

Public surface: import from `mapping` only. Imports `review` and `config`.
"""

from __future__ import annotations

from mapping.assemble import assemble
from mapping.engine import EntityMapping, MappedRecord, MapResult, map_records
from mapping.entities import ENTITIES, ComponentDraft, PersonRef, ServiceDraft
from mapping.loader import SystemMapping, load_mappings, shipped_mapping_path
from mapping.preview import PreviewField, PreviewRow, preview, preview_as_json, render_preview
from mapping.transforms import REGISTRY as TRANSFORMS

__all__ = [
    "ENTITIES",
    "TRANSFORMS",
    "ComponentDraft",
    "EntityMapping",
    "MapResult",
    "MappedRecord",
    "PersonRef",
    "PreviewField",
    "PreviewRow",
    "ServiceDraft",
    "SystemMapping",
    "assemble",
    "load_mappings",
    "map_records",
    "preview",
    "preview_as_json",
    "render_preview",
    "shipped_mapping_path",
]
