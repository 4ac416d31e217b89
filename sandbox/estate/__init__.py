"""The seeded estate both stand-ins serve: its records (`model`), name pools (`names`), seeded ids
(`ids`), thirteen months of operational history (`history`) and `build_estate` (`builder`).

Plain data and the standard library only: imports nothing of ours outside `sandbox.estate`.
"""

from __future__ import annotations

from sandbox.estate.builder import REL_TYPE_DEPENDS_ON, build_estate
from sandbox.estate.model import (
    Agreement,
    Component,
    CsatResult,
    Estate,
    Group,
    Incident,
    KnowledgeArticle,
    Person,
    Problem,
    Relation,
    Service,
    ServiceOffering,
    SlaRecord,
)

__all__ = [
    "REL_TYPE_DEPENDS_ON",
    "Agreement",
    "Component",
    "CsatResult",
    "Estate",
    "Group",
    "Incident",
    "KnowledgeArticle",
    "Person",
    "Problem",
    "Relation",
    "Service",
    "ServiceOffering",
    "SlaRecord",
    "build_estate",
]
