"""A token bucket that paces the proxy's calls to upstream providers, so that they do not answer 429."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; a rate of 0 or less means no limit."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        """Take a token if one is there (returns 0), else the seconds until one will be."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            return (1 - self._tokens) / self.rate

    def acquire(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for a token; False when none came in time (the caller reports it)."""
        if self.rate <= 0:
            return True
        deadline = self._clock() + timeout_s
        while True:
            wait = self._reserve()
            if wait == 0:
                return True
            if self._clock() + wait > deadline:
                return False
            self._sleep(wait)
