"""Progress bars on a terminal (stderr) for long reads and writes; nothing when not a terminal."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)


class TerminalProgress:
    """Records read per stream (no known total) and tickets written out of those planned."""

    def __init__(self, console: Console | None = None) -> None:
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=True,
        )
        self._streams: dict[str, TaskID] = {}
        self._writes: TaskID | None = None

    def __enter__(self) -> TerminalProgress:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def page(self, stream: str, records: int) -> None:
        """A page of `records` of `stream` was read and stored."""
        if stream not in self._streams:
            self._streams[stream] = self.progress.add_task(f"reading {stream}", total=None)
        self.progress.advance(self._streams[stream], records)

    def written(self, done: int, total: int) -> None:
        """`done` of `total` planned tickets have been handled."""
        if self._writes is None:
            self._writes = self.progress.add_task("tickets", total=total)
        self.progress.update(self._writes, completed=done, total=total)
