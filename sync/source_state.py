"""What a source keeps between cycles (the ServiceNow CMDB mirror), kept in the state store too.

A source that keeps state (`kept_state`, `restore_state`, `forget_state`: see
`connectors.SourceState`) would otherwise walk the CMDB cold after every restart and on every
`sync --once` run. The pull loads the kept state before its first read (`SourceStateKeeper.load`)
and saves it once, after its last stream (`save`), or where a failure or a stop ended the pull:
only the items that changed since the last save are written, all in one transaction with the
new version, so a crash leaves the state of the last whole save.

The state is saved with the cursors of every stream as they were then (kind `pull`). It is
taken back only while the store's cursors are still those: a pull that died after storing some
pages (a services page the mirror did not take in, say) leaves cursors the state does not match,
and the source starts cold instead, which is always correct. The same check runs before every
pull of a process that stayed up, so a pull made without a keeper (another command on this
store) makes it reload, and walk cold, rather than go on behind cursors it did not read to.

Replicas: the version goes up with every save. Before each pull the keeper compares the store's
version with the one it loaded or saved; another replica's save since (it pulled while this one
did not) makes it reload, so a replica that takes over never goes on from a stale mirror of
its own memory. A save whose version moved meanwhile writes nothing and reloads next time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from connectors import SourceConnector, SourceState
from sync.state import StateStore

log = structlog.get_logger("slm_sync.source_state")
PULL = "pull"  # the keeper's own kind: the stream cursors the state was saved with
CURSORS = "cursors"


@dataclass
class SourceStateKeeper:
    """The last saved (or loaded) state of one source and its version in the store."""

    version: int | None = None
    saved: SourceState = field(default_factory=dict)
    loaded: bool = False
    reloaded: bool = False  # the last `load` took another process's (or replica's) state
    written: int = 0  # items written by the last save (changed plus removed)

    def load(self, source: SourceConnector, store: StateStore, *, cold: bool = False) -> None:
        """Before a pull: take the store's state unless ours is the store's latest version;
        `cold` (a `--full` pull): start from nothing instead, whatever is kept."""
        self.reloaded = False
        restore = getattr(source, "restore_state", None)
        if not callable(restore):
            return
        version = store.source_state_version(source.system)
        current = self.loaded and version == self.version and not cold
        # (a pull without a keeper, another command on this store, may have moved cursors;
        # with nothing kept yet, the memory is all there is)
        if current and (version is None or not _stale_streams(store, source.system, self.saved)):
            return  # what we hold in memory is what was last saved
        version, state = store.source_state(source.system)
        self.loaded, self.version, self.saved = True, version, state
        self.reloaded = version is not None
        if version is None or cold:
            _forget(source)
        elif stale := _stale_streams(store, source.system, state):
            log.info("source_state.stale", system=source.system, streams=stale)
            _forget(source)
        elif not _restored(restore, state):
            log.info("source_state.not_used", system=source.system, version=version)
            _forget(source)
        else:
            log.info("source_state.loaded", system=source.system, version=version)

    def save(self, source: SourceConnector, store: StateStore, streams: Sequence[str]) -> None:
        """After a pull of `streams`: write what changed of the source's state since the last
        save, with the streams' cursors as the store holds them now."""
        self.written = 0
        kept = getattr(source, "kept_state", None)
        if not callable(kept) or not self.loaded:
            return
        state: SourceState = dict(kept())
        if state:
            cursors = {s: _cursor_list(store.cursor(source.system, s)) for s in sorted(streams)}
            state[PULL] = {CURSORS: cursors}
        changed, removed = _changes(self.saved, state)
        if not changed and not removed:
            return
        version = store.save_source_state(source.system, changed, removed, expected=self.version)
        if version is None:  # another replica saved since we loaded: take theirs next pull
            log.warning("source_state.conflict", system=source.system, version=self.version)
            self.loaded = False
            return
        self.version, self.saved = version, state
        self.written = sum(map(len, changed.values())) + sum(map(len, removed.values()))
        log.info("source_state.saved", system=source.system, version=version, items=self.written)

    def save_after_failure(
        self, source: SourceConnector, store: StateStore, streams: Sequence[str]
    ) -> None:
        """`save` where a pull ended early: the source's state is as current as the cursors
        it read pages for (a refresh keeps a cursor per table it read); a failing save is
        logged, the pull's own error is the one raised."""
        try:
            self.save(source, store, streams)
        except Exception as error:
            log.warning("source_state.save_failed", system=source.system, error=str(error))
            self.loaded = False  # reload (and check the cursors) before the next pull


def _changes(
    old: SourceState, new: SourceState
) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """Items of `new` that `old` does not hold equal, and keys of `old` that `new` lacks."""
    changed: dict[str, dict[str, Any]] = {}
    removed: dict[str, list[str]] = {}
    for kind in {*old, *new}:
        before, after = old.get(kind, {}), new.get(kind, {})
        fresh = {k: v for k, v in after.items() if k not in before or before[k] != v}
        gone = [k for k in before if k not in after]
        if fresh:
            changed[kind] = fresh
        if gone:
            removed[kind] = gone
    return changed, removed


def _stale_streams(store: StateStore, system: str, state: SourceState) -> list[str]:
    """Streams whose stored cursor is not the one the state was saved with."""
    saved = state.get(PULL, {}).get(CURSORS, {})
    stale = []
    for stream, cursor in saved.items():
        stored = store.cursor(system, stream)
        if _cursor_list(stored) != cursor:
            stale.append(stream)
    return stale if saved else [PULL]


def _restored(restore: Callable[[SourceState], bool], state: SourceState) -> bool:
    """Whether the source took the kept state (one it cannot read counts as not taken)."""
    try:
        return restore({k: v for k, v in state.items() if k != PULL})
    except (KeyError, TypeError, ValueError, IndexError) as error:
        log.warning("source_state.unreadable", error=f"{type(error).__name__}: {error}")
        return False


def _forget(source: SourceConnector) -> None:
    forget = getattr(source, "forget_state", None)
    if callable(forget):
        forget()


def _cursor_list(cursor: tuple[str, str] | None) -> list[str] | None:
    return None if cursor is None else list(cursor)
