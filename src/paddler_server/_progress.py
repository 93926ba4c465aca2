"""The CLI's download progress bar, drawn from the agent's status.

The library draws nothing: downloads report through ``on_progress`` into the agent's status
(``download_current`` of ``download_total``), which ``Agent.subscribe_status()`` yields after
every change. ``paddler agent`` and ``paddler demo`` draw a rich bar on stderr from it while
bytes arrive, only when stderr is a terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paddler.wire import SlotAggregatedStatusSnapshot

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from paddler.agent import Agent

__all__ = ["DownloadBar", "show_download_progress"]


class DownloadBar:
    """One rich bar per downloaded file; ``show(status)`` moves it, or ends it once done."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._filename: str | None = None

    def show(self, status: SlotAggregatedStatusSnapshot) -> None:
        filename = status.download_filename
        if filename is None:  # no download now (finished, failed or never started)
            self.stop()
            return
        total = None if status.download_indeterminate else status.download_total
        if self._progress is None or filename != self._filename:
            self.stop()
            self._start(filename, total)
        assert self._progress is not None and self._task is not None
        self._progress.update(self._task, completed=status.download_current, total=total)

    def _start(self, filename: str, total: int | None) -> None:
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
            console=self._console,
        )
        self._task = self._progress.add_task(filename, total=total)
        self._filename = filename
        self._progress.start()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._task, self._filename = None, None, None


async def show_download_progress(agent: Agent, console: Console | None = None) -> None:
    """Draw the agent's downloads until it closes (or this is cancelled).

    :param console: where to draw (default: stderr, and nothing unless it is a terminal).
    """
    from rich.console import Console

    console = console or Console(stderr=True)
    if not console.is_terminal:
        return
    bar = DownloadBar(console)
    try:
        async for status in agent.subscribe_status():
            bar.show(status)
    finally:
        bar.stop()
