"""The SLM domain, pure and I/O-free: the review model, the neutral document and the RACI matrix.

Public surface: import from `review` only.
"""

from __future__ import annotations

from review import document
from review.document import Document
from review.model import (
    Agreement,
    AgreementKind,
    Attainment,
    AttainmentStatus,
    Component,
    CsatResponse,
    FeasibilityFinding,
    Gap,
    GapKind,
    Material,
    MaterialKind,
    Metric,
    MonthlyAttainment,
    Person,
    ReviewPack,
    ReviewPeriod,
    Service,
    SkippedRecord,
    SlaRecord,
    SourceRef,
    TicketKind,
    TicketSpec,
)
from review.raci import Activity, Letter, RaciError, RaciMatrix, Role, Scope

__all__ = [
    "Activity",
    "Agreement",
    "AgreementKind",
    "Attainment",
    "AttainmentStatus",
    "Component",
    "CsatResponse",
    "Document",
    "FeasibilityFinding",
    "Gap",
    "GapKind",
    "Letter",
    "Material",
    "MaterialKind",
    "Metric",
    "MonthlyAttainment",
    "Person",
    "RaciError",
    "RaciMatrix",
    "ReviewPack",
    "ReviewPeriod",
    "Role",
    "Scope",
    "Service",
    "SkippedRecord",
    "SlaRecord",
    "SourceRef",
    "TicketKind",
    "TicketSpec",
    "document",
]
