"""Progress for long CLI runs: a redrawn bar with rate and ETA on a terminal, plain lines otherwise."""

import sys
import time
from typing import TextIO

_REDRAW_S = 0.1
_LINE_EVERY_S = 5.0
_BAR = 30


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO = sys.stderr, enabled: bool = True) -> None:
        self._label = label
        self._total = max(total, 1)
        self._stream = stream
        self._enabled = enabled and total > 0
        self._tty = stream.isatty()
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._count = 0
        self._drawn = -1  # the count last shown

    def update(self, count: int) -> None:
        self._count = count
        now = time.monotonic()
        every = _REDRAW_S if self._tty else _LINE_EVERY_S
        if self._enabled and (now - self._last_draw >= every or count >= self._total):
            self._last_draw = now
            self._draw(now)

    def close(self) -> None:
        if self._enabled:
            if self._drawn != self._count:
                self._draw(time.monotonic())
            if self._tty:
                self._stream.write("\n")
            self._stream.flush()

    def _draw(self, now: float) -> None:
        self._drawn = self._count
        elapsed = max(now - self._started, 1e-6)
        rate = self._count / elapsed
        eta = (self._total - self._count) / rate if rate > 0 else float("inf")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta != float("inf") else "--:--:--"
        text = f"{self._label} {self._count}/{self._total}  {rate:.1f}/s  ETA {eta_text}"
        if self._tty:
            filled = int(_BAR * self._count / self._total)
            self._stream.write(f"\r[{'#' * filled}{'.' * (_BAR - filled)}] {text}")
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
