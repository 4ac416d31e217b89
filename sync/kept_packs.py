"""The last build's packs and charts, kept in the state store so a restart rebuilds nothing.

`Engine.last_build` lets a cycle reuse a review's pack and chart when its inputs' fingerprint
did not change (`sync.build.review_fingerprint`). That build lives in memory; a restarted daemon
or a `sync --once` run would render every pack and chart again. So each pack built (rendered) in
a cycle is kept in `built_packs` (the fingerprint, the pack, the chart, and a digest of the code
that built it) and a process with no build of its own starts from those.

Only the rendering is saved: the fingerprint covers the pack's inputs, the meeting as its ticket
shows it included, and the tickets are still read every cycle (the tickets are the record). A
pack kept by other code (another slm-sync version, or other source files of `review` and
`sync.build`, which make packs and charts), or one that does not read back equal, is built
again.
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pydantic import ValidationError

import review
import sync.build
from review import Cycle, ReviewPack
from sync.build import ReviewBuild
from sync.state import BuiltPack, StateStore


def kept_build(store: StateStore, cycle: Cycle) -> ReviewBuild | None:
    """The packs, charts and fingerprints kept for `cycle` by this code (None: none)."""
    build = ReviewBuild(cycle, (), (), (), {}, {}, {})
    for kept in store.built_packs(cycle.id, code_digest()):
        try:
            pack = ReviewPack.model_validate_json(kept.pack)
        except ValidationError:
            continue
        build.packs[kept.service_key] = pack
        build.charts[kept.service_key] = kept.chart
        build.fingerprints[kept.service_key] = kept.fingerprint
    return build if build.packs else None


def keep_packs(store: StateStore, build: ReviewBuild, *, whole: bool) -> None:
    """Keep the packs `build` rendered (`rebuilt`); a whole build drops the other services'."""
    packs = [kept for key in build.rebuilt if (kept := _kept(build, key)) is not None]
    if packs or whole:
        store.keep_built_packs(packs, keep=set(build.packs) if whole else None)


def _kept(build: ReviewBuild, key: str) -> BuiltPack | None:
    """A rebuilt pack as kept, if it reads back as the same pack."""
    pack, chart = build.packs.get(key), build.charts.get(key)
    if pack is None or chart is None:
        return None
    encoded = pack.model_dump_json()
    if ReviewPack.model_validate_json(encoded) != pack:
        return None  # kept, it would differ from what this cycle built: build it again
    fingerprint = build.fingerprints[key]
    return BuiltPack(key, build.cycle.id, fingerprint, code_digest(), encoded, chart)


@cache
def code_digest() -> str:
    """A digest of the slm-sync version and of the code that makes packs and charts."""
    try:
        digest = hashlib.sha256(version("slm-sync").encode())
    except PackageNotFoundError:  # a source tree not installed
        digest = hashlib.sha256(b"unknown")
    files = sorted(Path(review.__file__).parent.rglob("*.py"))
    for path in [*files, Path(sync.build.__file__)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()
