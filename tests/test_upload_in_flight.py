"""How many PutSnapshotBlock calls a raw upload keeps in flight: the limit chosen from observed
timings (fed deterministically here, no clock, no network), and the worker pool that obeys it."""

from __future__ import annotations

import math
import random
import threading
import time

import pytest

from image_builds import ebs_upload, in_flight, retry

MS = 1e-3
CPU = 0.5 * MS  # a 512 KiB block's local cost (read, SHA-256, sign, send) on the bench machine


def feed(limiter: in_flight.InFlightLimit, round_trip: float, blocks: int, now: float = 0.0,
         cpu: float = CPU) -> tuple[float, list[int]]:
    """Play `blocks` blocks against a closed system whose local side is one CPU: with N in flight,
    a block waits the round trip, or, once N blocks need more CPU than one round trip hides, the
    other blocks' CPU (the queue that more threads than needed build). Returns (clock, limits)."""
    limits = []
    for _ in range(blocks):
        crowd = limiter.limit
        wait = max(round_trip, (crowd - 1) * cpu)
        now += max(round_trip + cpu, crowd * cpu) / crowd
        limits.append(limiter.observe(wait, cpu, crowd, now))
    return now, limits


def test_a_near_endpoint_gets_a_few_puts_in_flight():
    limiter = in_flight.InFlightLimit()
    _, limits = feed(limiter, 0.3 * MS, 2000)
    assert limits[-1] <= 4
    assert max(limits) <= 4


@pytest.mark.parametrize("round_trip, at_least", [(10 * MS, 21), (20 * MS, 41), (50 * MS, 64)])
def test_tens_of_milliseconds_get_enough_in_flight_to_hide_them(round_trip, at_least):
    """Little's law: (round trip + CPU) / CPU blocks keep the CPU busy; never more than the cap."""
    limiter = in_flight.InFlightLimit()
    _, limits = feed(limiter, round_trip, 500)
    assert at_least <= limits[-1] <= 64
    assert limits[0] == in_flight.FLOOR  # the first blocks measure the round trip with few in flight


def test_the_limit_stays_between_floor_and_cap_whatever_it_sees():
    rng = random.Random(7)
    limiter = in_flight.InFlightLimit(cap=16, floor=3)
    now = 0.0
    for _ in range(5000):
        now += rng.uniform(0, 0.2)
        limit = limiter.observe(rng.choice([0.0, rng.uniform(0, 5)]), rng.choice([0.0, rng.uniform(0, 0.01)]),
                                rng.randint(1, 20), now)
        assert 3 <= limit <= 16 and limit == limiter.limit


def test_queueing_behind_our_own_blocks_does_not_raise_the_limit():
    """Too many in flight at ~0 ms: each block waits for the others' CPU, N-1 blocks' worth, which
    read as a round trip would justify N again. The probe sees the real one and the limit falls."""
    limiter = in_flight.InFlightLimit()
    limiter.limit = 64  # as if it had been right a moment ago
    limiter.probing, limiter.round_trip, limiter.round_trip_at, limiter.cpu = False, 31 * MS, 0.0, CPU
    now, _ = feed(limiter, 0.3 * MS, 200, now=0.0)
    assert limiter.limit == 64  # within the horizon the old estimate holds...
    now, limits = feed(limiter, 0.3 * MS, 400, now=in_flight.HORIZON + 1)
    assert limits[-1] <= 4  # ...then a probe finds the real round trip


def test_a_latency_that_rises_is_followed_within_the_horizon():
    limiter = in_flight.InFlightLimit()
    now, limits = feed(limiter, 0.3 * MS, 500)
    assert limits[-1] <= 4
    now, limits = feed(limiter, 20 * MS, 50, now=now)
    assert limits[-1] <= 4  # not yet: one slow stretch is not a new round trip
    now, limits = feed(limiter, 20 * MS, 2000, now=now + in_flight.HORIZON)
    assert limits[-1] >= 41
    assert in_flight.FLOOR in limits  # it got there through a probe with few in flight


def test_a_latency_that_falls_is_followed_within_the_horizon():
    """With dozens in flight each block then waits for the others' CPU, which looks like the old
    round trip; the next probe (at most a horizon later) sees the new one."""
    limiter = in_flight.InFlightLimit()
    now, limits = feed(limiter, 20 * MS, 300)
    assert limits[-1] >= 41
    _, limits = feed(limiter, 0.3 * MS, 200, now=now + in_flight.HORIZON)
    assert limits[-1] <= 4


def test_a_probe_ignores_blocks_started_before_the_crowd_drained():
    limiter = in_flight.InFlightLimit(floor=2)
    assert limiter.observe(40 * MS, CPU, 30, 0.0) == 2  # queued behind 29 others: not a round trip
    assert limiter.round_trip is None
    for i, wait in enumerate([10 * MS, 11 * MS, 9 * MS]):
        assert limiter.observe(wait, CPU, 1 + i % 2, 0.01 * i) == 2
        assert limiter.probing
    limit = limiter.observe(10.5 * MS, CPU, 2, 0.04)
    # a block that had one other in flight may have waited its CPU behind it: 10, 10.5, 9, 10
    assert not limiter.probing and limiter.round_trip == pytest.approx(10 * MS)
    assert limit == math.ceil(1.5 * (10 * MS + CPU) / CPU)


def test_the_round_trip_is_a_typical_one_not_the_luckiest_nor_a_retried_one():
    limiter = in_flight.InFlightLimit(floor=2)
    for wait in [1 * MS, 30 * MS, 32 * MS, 2.5]:  # one lucky block, one that backed off 2.5 s
        limit = limiter.observe(wait, CPU, 1, 0.0)
    assert limiter.round_trip == pytest.approx(31 * MS)
    assert limit == 64
    limiter = in_flight.InFlightLimit(floor=2)
    for wait in [10 * MS, 10 * MS, 11 * MS, 2.5]:
        limit = limiter.observe(wait, CPU, 1, 0.0)
    assert limit == math.ceil(1.5 * (10.5 * MS + CPU) / CPU) < 64


def test_floor_and_cap_are_checked():
    with pytest.raises(ValueError):
        in_flight.InFlightLimit(cap=4, floor=5)
    with pytest.raises(ValueError):
        in_flight.InFlightLimit(floor=0)


# ---------------------------------------------------------------- the pool that obeys it


class Scripted:
    """A limiter whose limit follows a script: limits[i] after the i-th block observed."""

    def __init__(self, limits: list[int]):
        self.limits = limits
        self.limit = limits[0]
        self.seen = 0

    def observe(self, wait, cpu, crowd, now):
        self.seen += 1
        self.limit = self.limits[min(self.seen, len(self.limits) - 1)]
        return self.limit


class Tracker:
    """A job that records how many jobs ran at once, on which threads, and against which limit."""

    def __init__(self, limiter, seconds=0.003, fail_at=None):
        self.limiter = limiter
        self.seconds = seconds
        self.fail_at = fail_at
        self.lock = threading.Lock()
        self.running = 0
        self.over = []      # (index, running, limit) whenever more ran than the limit allowed
        self.threads = set()
        self.done = []

    def __call__(self, index: int) -> bool:
        with self.lock:
            self.running += 1
            self.threads.add(threading.current_thread().name)
            if self.running > self.limiter.limit:
                self.over.append((index, self.running, self.limiter.limit))
        try:
            time.sleep(self.seconds)
            if index == self.fail_at:
                raise RuntimeError(f"block {index} failed")
            self.done.append(index)
            return True
        finally:
            with self.lock:
                self.running -= 1


def run_pool(count, limiter, job, n=60):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("peak", _catch(
        lambda: ebs_upload._run_workers(count, iter(range(n)), job, threading.Event(), limiter))))
    t.start()
    t.join(30)
    assert not t.is_alive(), "the pool did not finish"
    return out["peak"]


def _catch(fn):
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - returned for the test to check
        return exc


def test_the_pool_keeps_no_more_in_flight_than_the_limit_and_starts_no_more_threads():
    limiter = in_flight.FixedLimit(3)
    job = Tracker(limiter)
    peak = run_pool(16, limiter, job)
    assert sorted(job.done) == list(range(60))
    assert job.over == [] and peak == 3
    assert len(job.threads) == 3  # 13 of the 16 allowed threads were never needed


def test_the_pool_follows_a_limit_that_falls_and_rises():
    # 12 at first, 1 after the 10th block (the crowd drains: nothing new starts until it has),
    # back to 6 after the 30th; the threads beyond the limit wait and are woken again
    limiter = Scripted([12] * 10 + [1] * 20 + [6])
    job = Tracker(limiter)
    peak = run_pool(12, limiter, job)
    assert sorted(job.done) == list(range(60))
    assert 1 < peak <= 12 and len(job.threads) <= 12
    # a block starts only below the limit; one that started as the limit fell to 1 joined a crowd
    # that was still draining, every other one found room
    assert [o for o in job.over if o[2] > 1] == []


def test_parked_workers_use_no_cpu():
    limiter = Scripted([8, 1])
    job = Tracker(limiter, seconds=0.02)
    cpu0 = time.process_time()
    run_pool(8, limiter, job, n=40)  # 7 threads parked for ~0.7 s
    assert time.process_time() - cpu0 < 0.25


def test_a_failure_ends_parked_workers_too():
    limiter = Scripted([8, 1])
    job = Tracker(limiter, fail_at=20)
    err = run_pool(8, limiter, job, n=60)
    assert isinstance(err, RuntimeError) and "block 20 failed" in str(err)
    assert 20 not in job.done and len(job.done) < 60
    assert not [t for t in threading.enumerate() if t.name.startswith("ebs-upload-")]


def test_a_cancelled_retry_is_not_the_error_reported():
    limiter = in_flight.FixedLimit(2)

    def job(index):
        if index == 0:
            time.sleep(0.05)
            raise retry.Cancelled("cancelled while retrying")
        if index == 1:
            raise ValueError("the real failure")
        return True

    err = run_pool(2, limiter, job, n=4)
    assert isinstance(err, ValueError)
