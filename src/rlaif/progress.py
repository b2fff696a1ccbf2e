"""Rich progress bars with counts and rates, on stderr."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

console = Console(stderr=True)


class RateColumn(TextColumn):
    """Rows per second (or seconds per row when slower than one a second)."""

    def __init__(self, unit: str):
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D102 - rich API
        from rich.text import Text

        done = task.completed - task.fields.get("start", 0)
        speed = done / task.elapsed if task.elapsed and done > 0 else None
        if not speed:
            return Text(f"-- {self.unit}/s", style="progress.data.speed")
        if speed >= 1:
            return Text(f"{speed:.2f} {self.unit}/s", style="progress.data.speed")
        return Text(f"{1 / speed:.1f} s/{self.unit}", style="progress.data.speed")


@contextmanager
def bar(description: str, total: int, unit: str = "rows", completed: int = 0) -> Iterator:
    """Yield ``advance(n)``: a bar that shows done/total, percentage, rate, elapsed and ETA."""
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TaskProgressColumn(), RateColumn(unit), TimeElapsedColumn(),
                        TextColumn("eta"), TimeRemainingColumn(), console=console, transient=False)
    with progress:
        task = progress.add_task(description, total=total, completed=completed, start=completed)
        # rich's rate counts only what happens while the bar runs, so resumed rows do not inflate it
        yield lambda n=1: progress.advance(task, n)
