"""The build's change digest (`sync.build._digest`): each value's text followed by a unit
separator, each row by a record separator. A whole build compares it with the last build's to
reuse what did not change, so the bytes it digests are pinned here."""

from __future__ import annotations

import hashlib

from sync.build import _digest


def test_the_digest_is_of_each_value_then_a_unit_separator_and_each_row_then_a_record_one() -> None:
    rows = [("agr-1", 3, None, True), (), ("é\x1f",)]
    expected = b"agr-1\x1f3\x1fNone\x1fTrue\x1f\x1e" + b"\x1e" + "é\x1f\x1f\x1e".encode()
    assert _digest(rows) == hashlib.sha256(expected).hexdigest()
    assert _digest([]) == hashlib.sha256().hexdigest()
    assert _digest([("a", "b")]) != _digest([("a",), ("b",)])  # rows are told apart
