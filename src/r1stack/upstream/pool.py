"""The replicas of one upstream model and the choice among them: least outstanding requests, a circuit breaker
per replica (closed -> open after failures -> half-open trial -> closed), and the wait before one returns."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass
class Replica:
    url: str  # base URL, ending in /v1
    outstanding: int = 0
    state: str = "closed"  # circuit: closed (in rotation) | open (ejected) | half_open (one trial allowed)
    consecutive_failures: int = 0
    open_until: float = 0.0  # monotonic time when an open circuit may be tried again
    ejections: int = 0  # times ejected since it last served well (grows the cool-down)
    last_error: str = ""
    served: int = 0
    failed: int = 0
    ejected_total: int = 0

    @property
    def healthy(self) -> bool:
        return self.state == "closed"


@dataclass
class ReplicaPool:
    urls: list[str]
    eject_after: int = 2  # consecutive failures that open the circuit
    base_cooldown_s: float = 2.0  # first ejection; doubles each time it fails again, up to max_cooldown_s
    max_cooldown_s: float = 60.0
    replicas: list[Replica] = field(init=False)
    _turn: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.replicas = [Replica(u.rstrip("/")) for u in self.urls]

    def _usable(self, r: Replica, now: float) -> bool:
        if r.state == "closed":
            return True
        if r.state == "open" and now >= r.open_until:
            r.state = "half_open"  # the cool-down is over: let one request (or health check) try it
        return r.state == "half_open" and r.outstanding == 0

    def pick(self, exclude: set[str] = frozenset()) -> Replica | None:
        """The usable replica with the fewest requests in flight; ties go round the ring so load spreads."""
        now = time.monotonic()
        n = len(self.replicas)
        self._turn = (self._turn + 1) % n
        ring = [self.replicas[(self._turn + i) % n] for i in range(n)]
        usable = [r for r in ring if r.url not in exclude and self._usable(r, now)]
        if not usable:
            return None
        # A closed circuit before a trial: a half-open replica only takes traffic nobody else can.
        closed = [r for r in usable if r.state == "closed"]
        return min(closed or usable, key=lambda r: r.outstanding)

    def any_usable(self) -> bool:
        now = time.monotonic()
        return any(self._usable(r, now) for r in self.replicas)

    def retry_after_s(self) -> int:
        """Whole seconds until the first ejected replica may be tried again (at least 1)."""
        now = time.monotonic()
        waits = [r.open_until - now for r in self.replicas if r.state == "open"]
        return max(1, math.ceil(min(waits))) if waits else 1

    def succeeded(self, r: Replica) -> None:
        r.served += 1
        r.consecutive_failures = 0
        r.ejections = 0
        r.state = "closed"
        r.last_error = ""

    def failed(self, r: Replica, reason: str) -> bool:
        """Count a failure; True when this one ejected the replica (its circuit opened)."""
        r.failed += 1
        r.consecutive_failures += 1
        r.last_error = reason
        if r.state == "half_open" or (r.state == "closed" and r.consecutive_failures >= self.eject_after):
            r.ejections += 1
            r.ejected_total += 1
            r.state = "open"
            cooldown = min(self.max_cooldown_s, self.base_cooldown_s * 2 ** (r.ejections - 1))
            r.open_until = time.monotonic() + cooldown
            return True
        return False
