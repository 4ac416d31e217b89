"""The comment on a refreshed review says what changed in words people use, never in the
internal status values (`at_risk → missed`)."""

from __future__ import annotations

from datetime import timedelta

from review import Agreement, AgreementKind, Metric
from review.document import document_text
from sync.engine import _change_document, target_names


def _state(status: str, breached: int, name: str = "Availability") -> dict[str, dict[str, object]]:
    return {"sla-1": {"name": name, "status": status, "breached": breached, "measured": 40}}


def _note(before: dict[str, dict[str, object]], now: dict[str, dict[str, object]]) -> str:
    note = _change_document(before, now)
    assert note is not None
    return document_text(note)


def test_a_status_change_reads_in_words_with_what_it_was() -> None:
    """at_risk → missed reads "Availability: missed its target (was: at risk)"."""
    text = _note(_state("at_risk", 2), _state("missed", 3))
    assert "Availability: missed its target (was: at risk)" in text
    assert "1 new breach of Availability" in text
    assert "at_risk" not in text and "→" not in text


def test_every_status_change_is_written_in_words() -> None:
    """Each pair of statuses reads as words; no internal value leaks into the comment."""
    statuses = ("met", "at_risk", "missed", "no_data")
    for before in statuses:
        for now in statuses:
            if before == now:
                continue
            text = _note(_state(before, 0), _state(now, 0))
            assert "_" not in text and "→" not in text, text
    assert "meets its target (was: missed)" in _note(_state("missed", 0), _state("met", 0))
    assert "has no records in the period (was: met)" in _note(
        _state("met", 0), _state("no_data", 0)
    )


def test_new_breaches_are_counted_in_words() -> None:
    """Several new breaches: "3 new breaches of Availability"."""
    assert "3 new breaches of Availability" in _note(_state("met", 1), _state("met", 4))


def test_a_status_a_later_version_wrote_still_reads_as_words() -> None:
    """A stored status this version does not know is shown without its underscore."""
    text = _note(_state("under_review", 0), _state("missed", 0))
    assert "Availability: missed its target (was: under review)" in text


def test_targets_are_named_as_the_pack_names_them_unless_two_would_read_the_same() -> None:
    """The note names a target as the pack's table does ("Resolution P1"); two agreements of one
    service that would read the same keep their own names."""

    def sla(key: str, name: str, metric: Metric, priority: str | None = None) -> Agreement:
        return Agreement(
            key=key, name=name, kind=AgreementKind.SLA, metric=metric, target_percent=95,
            window=None if metric is Metric.AVAILABILITY else timedelta(hours=4),
            priority=priority, service_key="svc",
        )  # fmt: skip

    names = target_names(
        [
            sla("a", "Mail P1 resolution", Metric.RESOLUTION, "1"),
            sla("b", "Mail uptime (business hours)", Metric.AVAILABILITY),
            sla("c", "Mail uptime (24x7)", Metric.AVAILABILITY),
        ]
    )
    assert names == {
        "a": "Resolution P1",
        "b": "Mail uptime (business hours)",
        "c": "Mail uptime (24x7)",
    }
