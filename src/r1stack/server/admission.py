"""Backpressure: at most max_num_seqs running plus max_waiting queued sequences; beyond that a 429 with
Retry-After, before any work is done. A slot is released exactly once, even if a stream is never started."""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import StreamingResponse

from r1stack.server.errors import APIError


class Slot:
    def __init__(self, admission: Admission, n: int):
        self._admission = admission
        self._n = n

    def release(self) -> None:
        if self._n:
            self._admission.in_flight -= self._n
            self._n = 0


class Admission:
    def __init__(
        self,
        max_running: int,
        max_waiting: int,
        retry_after_s: int = 1,
        on_reject: Callable[[], None] | None = None,
    ):
        self.capacity = max(1, max_running + max_waiting)
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self._on_reject = on_reject  # counts refusals (the request_rejected metric)

    def admit(self, n: int = 1) -> Slot:
        # One request always fits an idle server, whatever its n.
        if self.in_flight and self.in_flight + n > self.capacity:
            if self._on_reject is not None:
                self._on_reject()
            raise APIError(
                429,
                f"the server is at capacity ({self.in_flight} sequences running or queued, limit {self.capacity}); "
                f"retry after {self.retry_after_s} s",
                code="queue_full",
                headers={"Retry-After": str(self.retry_after_s)},
            )
        self.in_flight += n
        return Slot(self, n)


class SlotStreamingResponse(StreamingResponse):
    """A stream that gives its slot back when the response ends, however it ends (even if never iterated)."""

    def __init__(self, content, slot: Slot, **kw):
        super().__init__(content, **kw)
        self.slot = slot

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
