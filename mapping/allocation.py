"""Cyclic garbage collection spaced out while records are mapped, stored and built in bulk.

A pull allocates a dict, an entity and a mirror entry per record, nearly all freed by reference
counting; a build decodes every agreement and makes an attainment for each, which live until the
cycle ends. With CPython's default thresholds (the youngest generation every 700 allocations,
the whole heap once it grew by a quarter) each of these bulk phases set off collection after
collection walking the same long-lived objects again: a quarter of a pull's CPU, and about
2 s of a cold sync's build at 1,000 services (twelve whole-heap collections, each slower than
the last as the build's objects piled up; `bench/cold_sync.py` with a `gc.callbacks` counter).

`spaced_collections()` keeps the objects that exist when it starts (modules, settings, the
source's kept state) out of collections (`gc.freeze`) and collects the youngest generation
every `GC_YOUNG` allocations; whole-heap collections still run by CPython's own rule, so
cyclic garbage made meanwhile (matplotlib figures drawn on the chart thread: about 0.8 MB each)
is still collected during the scope: deferring the oldest generation instead kept every chart
of a cycle alive (200 charts: 164 MB more). Scopes nest and overlap across threads: the first
to start saves the thresholds and freezes, the last to end puts them back and unfreezes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GC_YOUNG = 10_000  # allocations between collections of the youngest generation in a scope

_lock = threading.Lock()
_depth = 0  # scopes open now, in any thread
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def spaced_collections() -> Iterator[None]:
    """Fewer and smaller cyclic garbage collections until the last open scope ends."""
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            young, *older = _saved
            gc.freeze()
            gc.set_threshold(max(young, GC_YOUNG), *older)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
                gc.unfreeze()
