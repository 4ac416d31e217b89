"""Cyclic garbage collection spaced out while records are mapped, stored and built in bulk.

A pull allocates a dict, an entity and a mirror entry per record, nearly all freed by reference
counting; a build decodes every agreement and makes an attainment for each, which live until the
cycle ends. With CPython's default thresholds (the youngest generation every 700 allocations,
the whole heap once it grew by a quarter) each of these bulk phases set off collection after
collection walking the same long-lived objects again: a quarter of a pull's CPU, and 2.6 s of a
cold sync's 31 s of CPU at 1,000 services once only the pull was spaced (twelve whole-heap
collections, each slower than the last as the build's objects piled up; counted with
`gc.callbacks` around `bench/cold_sync.py`).

`spaced_collections()` collects the youngest generation every `GC_YOUNG` allocations, so that
far fewer collections reach the oldest generation; whole-heap collections still run by
CPython's own rule, so cyclic garbage made meanwhile (matplotlib figures drawn on the chart
thread: about 0.8 MB each) is still collected: deferring the oldest generation for the cycle
kept every chart of a cycle alive (200 charts: 164 MB more).

`spaced_collections(freeze=True)` (a cycle; a cold pull outside one) also leaves the objects
that exist when it starts out of collections (`gc.freeze`) until it ends: an idle cycle at
1,000 services made one whole-heap collection walking the 868,000 objects the process holds
(0.6 s of its 2.4 s of CPU). Garbage that exists when a freeze starts (cyclic garbage of the
cycle before, a chart's last figure) is collected only by a whole-heap collection while nothing
is frozen, and a daemon waiting between cycles allocates too little to set one off: frozen
cycle after cycle, it was never collected. So every `FREEZES_PER_WALK`-th freeze is preceded
by a whole-heap collection (0.6 s at that estate, once in ten cycles): such garbage waits ten
cycles at most. A daemon runs that collection while it waits between cycles (`collect_if_due`,
right after the cycle that made it due), so that the next cycle, usually a webhook's, does not
start that much later; a scope runs it only when nobody did (work queued during the tenth cycle
starts at once, and its cycle pays; work arriving during the collection waits for it). A
freeze made by other code (`bench/mapping.py` freezes its input rows) is left as it is: no
scope freezes or unfreezes then.

Scopes nest and overlap across threads: the first to start saves the thresholds, the last to
end puts them back; likewise for the freeze among freezing scopes.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GC_YOUNG = 10_000  # allocations between collections of the youngest generation in a scope
# A whole-heap collection before every this many freezes: garbage that a freeze caught (left
# between cycles, when nothing set off a whole-heap collection) waits at most this long
FREEZES_PER_WALK = 10

_lock = threading.Lock()
_depth = 0  # scopes open now, in any thread
_freezing = 0  # scopes open now that asked for the freeze
_froze = False  # the freeze now in place is ours (another's is left alone)
_freezes = 0  # freezes since the last whole-heap collection forced here
_saved: tuple[int, int, int] = gc.get_threshold()


def collect_if_due() -> bool:
    """Run the whole-heap collection the next freezing scope would start with, now (a daemon
    between cycles): True if it ran. Nothing runs while a freezing scope is open."""
    global _freezes
    seen = _freezes
    if _freezing or seen < FREEZES_PER_WALK:
        return False
    gc.collect()  # outside the lock, as in the scope (finalizers may run any code)
    with _lock:
        if _freezing == 0 and _freezes == seen:  # no scope froze meanwhile
            _freezes = 0
    return True


@contextmanager
def spaced_collections(*, freeze: bool = False) -> Iterator[None]:
    """Fewer cyclic garbage collections until the last open scope ends; with `freeze`, none
    of the objects from before the first freezing scope is walked until the last one ends."""
    global _depth, _freezing, _froze, _freezes, _saved
    # The forced whole-heap collection runs outside the lock (finalizers and weakref callbacks
    # may run any code); read without it, a race costs one collection more or less
    walked = freeze and _freezing == 0 and _freezes >= FREEZES_PER_WALK
    if walked:
        gc.collect()
    with _lock:
        if _depth == 0:
            _saved = gc.get_threshold()
            young, *older = _saved
            gc.set_threshold(max(young, GC_YOUNG), *older)
        _depth += 1
        if freeze:
            if _freezing == 0 and gc.get_freeze_count() == 0:
                if walked:
                    _freezes = 0
                gc.freeze()
                _froze = True
                _freezes += 1
            _freezing += 1
    try:
        yield
    finally:
        with _lock:
            if freeze:
                _freezing -= 1
                if _freezing == 0 and _froze:
                    gc.unfreeze()
                    _froze = False
            _depth -= 1
            if _depth == 0:
                gc.set_threshold(*_saved)
