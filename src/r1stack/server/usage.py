"""Per-request timing for the latency metrics: arrival, first scheduling, first token, end."""

from __future__ import annotations

import time

from r1stack.engine.outputs import RequestOutput
from r1stack.server.metrics import ServerMetrics


class RequestClock:
    def __init__(self) -> None:
        self.arrival = time.monotonic()
        self.first_token: float | None = None
        self.queue_s: float | None = None

    def saw(self, out: RequestOutput) -> None:
        # An upstream's outputs carry text but no token ids (and perhaps only reasoning at first).
        if self.first_token is None and (
            any(o.token_ids or o.text for o in out.outputs) or any(out.extra.get("reasoning", {}).values())
        ):
            self.first_token = time.monotonic()
        m = out.metrics
        if self.queue_s is None and m is not None and m.first_scheduled_time is not None:
            self.queue_s = max(0.0, m.first_scheduled_time - m.arrival_time)

    def observe(
        self, metrics: ServerMetrics, prompt_tokens: int, generation_tokens: int, reason: str | None
    ) -> None:
        metrics.observe_request(
            arrival=self.arrival,
            first_scheduled=None if self.queue_s is None else self.arrival + self.queue_s,
            first_token=self.first_token,
            finished=time.monotonic(),
            prompt_tokens=prompt_tokens,
            generation_tokens=generation_tokens,
            finish_reason=reason or "unknown",
        )
