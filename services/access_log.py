"""Access log lines for gRPC calls that stay readable at bulk rates (KLOSET_ACCESS_LOG).

A bulk load makes hundreds of calls a second; one INFO line each drowns the log and costs the server time. So
every failure and every call slower than KLOSET_ACCESS_LOG_SLOW_MS is always logged, and successful calls by the
mode: all of them, 1 in KLOSET_ACCESS_LOG_SAMPLE per method (the first included, so every method in use shows
up), or none. The grpc_server_* metrics still count every call.
"""

import logging
import threading
from collections import Counter

import grpc

from kloset.core.config import AccessLog, Settings

log = logging.getLogger(__name__)

_HEALTH_PREFIX = "/grpc.health.v1."


class AccessLogger:
    def __init__(self, mode: AccessLog = AccessLog.SAMPLED, sample: int = 100, slow_ms: float = 1000.0) -> None:
        if sample < 1:
            raise ValueError("sample must be at least 1")
        self._mode = mode
        self._sample = sample
        self._slow_s = slow_ms / 1000
        self._seen: Counter[str] = Counter()  # successful fast calls per method, for sampling
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "AccessLogger":
        return cls(settings.access_log, settings.access_log_sample, settings.access_log_slow_ms)

    def record(self, method: str, code: grpc.StatusCode, seconds: float) -> None:
        """Log one finished call if the mode says so; health probes (every few seconds) only at DEBUG."""
        slow = seconds >= self._slow_s
        note = ""
        if code is grpc.StatusCode.OK and not slow:
            if self._mode is AccessLog.FAILURES or (self._mode is AccessLog.SAMPLED and not self._sampled(method)):
                return
            note = f" (1 in {self._sample})" if self._mode is AccessLog.SAMPLED and self._sample > 1 else ""
        elif slow:
            note = " (slow)"
        level = logging.DEBUG if method.startswith(_HEALTH_PREFIX) else logging.INFO
        log.log(level, "%s %s %.1f ms%s", method, code.name, seconds * 1000, note)

    def _sampled(self, method: str) -> bool:
        """Whether this successful call is the 1 in N of its method that is logged (the first one is)."""
        with self._lock:
            count = self._seen[method]
            self._seen[method] = count + 1
        return count % self._sample == 0
