"""The progress bar every long ragenv job shows (rich): description, bar, done/total, time left."""
from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn


def progress_bar(*extra: ProgressColumn | str, disable: bool = False, transient: bool = True,
                 elapsed: bool = False, **options) -> Progress:
    """A ``rich.progress.Progress`` with ragenv's columns, then ``extra`` ones (e.g. a status field).

    ``elapsed``: show the time spent instead of the time left (jobs whose rate is unknown upfront).
    """
    from rich.progress import TimeElapsedColumn

    timing = TimeElapsedColumn() if elapsed else TimeRemainingColumn()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), timing, *extra)
    return Progress(*columns, disable=disable, transient=transient, **options)
