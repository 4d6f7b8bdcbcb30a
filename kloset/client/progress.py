"""Progress for long runs (tqdm): a redrawn bar on a terminal; elsewhere (a log file, CI) a plain line at most
every LINE_EVERY_S seconds and the last figure once, so a log is not flooded with carriage returns."""

import sys
from typing import TextIO

from tqdm import tqdm

REDRAW_S = 0.1
LINE_EVERY_S = 5.0
_PLAIN = "{desc} {n_fmt}/{total_fmt}  {rate_fmt}  ETA {remaining}"


class _Lines:
    """A stream for tqdm that turns its carriage-return redraws into one line each, a count shown only once (close
    redraws the last one)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._shown = ""

    def write(self, text: str) -> None:
        text = text.strip("\r\n")
        count = text.split("  ")[0]
        if text.strip() and count != self._shown:
            self._shown = count
            self._stream.write(text + "\n")

    def flush(self) -> None:
        self._stream.flush()


class Progress:
    """count of total done, shown under label; disabled (or with nothing to count) it shows nothing."""

    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr, enabled: bool = True) -> None:
        tty = stream.isatty()
        self._bar = tqdm(
            total=total,
            desc=label,
            file=stream if tty else _Lines(stream),
            disable=not (enabled and total > 0),
            mininterval=REDRAW_S if tty else LINE_EVERY_S,
            dynamic_ncols=tty,
            ascii=not tty,
            bar_format=None if tty else _PLAIN,
            unit="",
        )

    def update(self, count: int) -> None:
        """The count so far (not an increment), as callers know it."""
        if count > self._bar.n:
            self._bar.update(count - self._bar.n)

    def close(self) -> None:
        self._bar.close()
