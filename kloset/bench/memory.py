"""Peak anonymous memory of a store's processes during a benchmark: this process and its children (the Edge
optimize runs in one), sampled in a thread.

Anonymous pages are the memory a store really needs: heap, pinned indexes. Mmapped segment files are left out
(the kernel drops their clean pages under pressure and reads them again), and so is what this process held before
the store opened (the interpreter, the benchmark's own catalog), measured once at the start and subtracted.
"""

import threading
from pathlib import Path

import psutil

_KB = 1024


def anonymous_kb(pid: int) -> int:
    """Anonymous memory of one process in KiB, from /proc/PID/smaps_rollup (0 once it has exited)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Anonymous:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class PeakMemory:
    """Samples every interval_s until stopped; peak_mb is the largest sum seen above the starting baseline."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self._process = psutil.Process()
        self._interval_s = interval_s
        self._baseline_kb = anonymous_kb(self._process.pid)
        self._peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        own = anonymous_kb(self._process.pid) - self._baseline_kb
        try:
            children = self._process.children(recursive=True)
        except psutil.Error:
            children = []
        self._peak_kb = max(self._peak_kb, own + sum(anonymous_kb(c.pid) for c in children))

    @property
    def peak_mb(self) -> int:
        return round(self._peak_kb / _KB)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample()
