"""The replica pool's rules on their own: least outstanding requests, ejection after consecutive failures with a
growing cool-down, one trial request when it is over, and the Retry-After it advises."""

from __future__ import annotations

import time

from r1stack.engine.sampling_params import SamplingParams
from r1stack.upstream.pool import ReplicaPool
from r1stack.upstream.request import body_fields


def test_least_outstanding_wins_and_ties_rotate():
    pool = ReplicaPool(["http://a/v1", "http://b/v1", "http://c/v1"])
    a, b, c = pool.replicas
    a.outstanding, b.outstanding, c.outstanding = 2, 0, 1
    assert {pool.pick().url for _ in range(5)} == {"http://b/v1"}
    b.outstanding = 2
    assert pool.pick().url == "http://c/v1"
    c.outstanding = 2
    assert {pool.pick().url for _ in range(6)} == {r.url for r in pool.replicas}
    assert pool.pick(exclude={"http://a/v1", "http://b/v1"}).url == "http://c/v1"


def test_ejection_cooldown_doubles_and_one_trial_follows():
    pool = ReplicaPool(["http://a/v1", "http://b/v1"], eject_after=2, base_cooldown_s=0.2, max_cooldown_s=0.3)
    a, b = pool.replicas
    assert not pool.failed(a, "boom")
    assert a.state == "closed"
    assert pool.failed(a, "boom")
    assert a.state == "open" and a.ejections == 1
    assert [pool.pick().url for _ in range(4)] == ["http://b/v1"] * 4
    b.state, b.open_until = "open", time.monotonic() + 5
    assert pool.pick() is None and not pool.any_usable()
    assert 1 <= pool.retry_after_s() <= 5
    time.sleep(0.25)
    trial = pool.pick()
    assert trial is a and a.state == "half_open"
    a.outstanding = 1  # the trial is in flight: no second request joins it
    assert pool.pick() is None
    a.outstanding = 0
    assert pool.failed(a, "still broken")  # a failed trial re-opens at once, for longer (capped)
    assert a.state == "open" and a.open_until - time.monotonic() > 0.25
    time.sleep(0.35)
    pool.pick()
    pool.succeeded(a)
    assert a.state == "closed" and a.ejections == 0 and a.consecutive_failures == 0


def test_request_body_keeps_the_upstream_defaults():
    assert body_fields(SamplingParams(max_tokens=5)) == {"max_tokens": 5}
    got = body_fields(SamplingParams(max_tokens=5, temperature=0, top_k=5, stop="x", seed=3))
    assert got == {"max_tokens": 5, "temperature": 0.0, "top_k": 5, "stop": ["x"], "seed": 3}
