"""The rich progress bar a download draws on stderr (only while bytes arrive)."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["TerminalBar"]


class TerminalBar:
    """A rich progress bar on stderr, drawn only while bytes actually arrive."""

    def __init__(self, enabled: bool, filename: str, current: int, total: int | None) -> None:
        self._progress: Progress | None = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task(filename, total=total, completed=current)

    def __enter__(self) -> TerminalBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def update(self, current: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=current)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
