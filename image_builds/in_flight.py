"""How many PutSnapshotBlock calls to keep in flight: as many as the round trip needs, no more.

Against AWS a PUT takes tens of milliseconds and each block costs this process under one of CPU
(read, SHA-256, sign, send), so dozens must be in flight to keep the CPU busy. Against a near
endpoint (or when the machine is saturated) a handful already does, and every thread beyond that
costs CPU without adding throughput: threads hand the GIL to each other and wake up across cores
(measured: 64 threads cost 1.3-1.5x the CPU per GiB of one connection at ~0 ms, 3-4 threads
1.0-1.1x with more throughput; bench/RESULTS.md). So the limit follows Little's law:

    limit = headroom * (round trip + CPU per block) / CPU per block,   clamped to [floor, cap]

`CPU per block` is the thread CPU a block costs (an average of recent blocks); `round trip` is
the time a block spends not on our CPU, i.e. waiting for the network and the service. Once more
blocks are in flight than needed, a block also waits behind our own other blocks, and that wait
grows with the limit itself (estimating from it would confirm any limit); so, like BBR's RTT
probe, the round trip is measured with only `floor` blocks in flight: at the start, and again
every `horizon` seconds (the latency may have risen or fallen), each block's wait less the CPU
of the others in flight with it (what they can have held it up). It is the median of the probe's
blocks: a typical round trip, not the luckiest one (a latency with a tail needs more in flight
than its minimum says), and not a retried block's back-off. A probe costs a few round trips with
few blocks in flight, every `horizon` seconds.

Pure: the caller feeds it timings and the clock; it never sleeps or reads a clock itself.
"""

from __future__ import annotations

import math
import statistics

CAP = 64             # PUTs in flight at most (what the fixed pool had): at ~0.5 ms CPU per block the
                     # limit reaches it from ~20 ms of round trip on
FLOOR = 4            # at least: a probe measures this many blocks in one round trip (fewer cost a
                     # near endpoint no less CPU per GiB and lose throughput, measured)
HEADROOM = 1.5       # above the bare Little's-law figure: CPU per block varies, and some of it runs
                     # outside the GIL on another core
HORIZON = 10.0       # seconds between probes of the round trip (a probe costs ~3 round trips of
                     # little throughput: ~1 % at 30 ms)
PROBE = 4            # blocks a probe measures
CPU_WEIGHT = 1 / 8   # weight of the newest block in the CPU-per-block average


class InFlightLimit:
    """`observe(wait, cpu, crowd, now)` after each block sent; `limit` is the number of blocks to
    keep in flight now.

    `wait`: the block's wall time minus `cpu`, seconds; `cpu`: the thread CPU seconds it cost;
    `crowd`: how many blocks were in flight when it started (itself included); `now`: a monotonic
    clock, seconds."""

    def __init__(self, *, cap: int = CAP, floor: int = FLOOR, headroom: float = HEADROOM,
                 horizon: float = HORIZON):
        if not 1 <= floor <= cap:
            raise ValueError(f"need 1 <= floor <= cap, got floor={floor} cap={cap}")
        self.cap = cap
        self.floor = floor
        self.headroom = headroom
        self.horizon = horizon
        self.limit = floor
        self.cpu: float | None = None          # average CPU seconds per block
        self.round_trip: float | None = None   # seconds, None until the first probe ends
        self.round_trip_at = 0.0               # when the last probe ended
        self.probing = True                    # the first blocks are a probe
        self._probe: list[float] = []

    def observe(self, wait: float, cpu: float, crowd: int, now: float) -> int:
        """Feed one sent block's timings; returns the new limit."""
        cpu = max(cpu, 1e-6)
        wait = max(wait, 0.0)
        self.cpu = cpu if self.cpu is None else self.cpu + (cpu - self.cpu) * CPU_WEIGHT
        if self.probing:
            if crowd > self.floor:  # started before the probe drained the crowd: queued, not a round trip
                return self.limit
            self._probe.append(max(0.0, wait - (crowd - 1) * self.cpu))  # less what the others' CPU can have held it
            if len(self._probe) < PROBE:
                return self.limit
            self.round_trip, self.round_trip_at, self.probing = statistics.median(self._probe), now, False
        elif now - self.round_trip_at > self.horizon:
            self.probing, self._probe, self.limit = True, [], self.floor
            return self.limit
        self.limit = self.target()
        return self.limit

    def target(self) -> int:
        """The limit the current estimates call for."""
        if self.round_trip is None or self.cpu is None:
            return self.floor
        wanted = math.ceil(self.headroom * (self.round_trip + self.cpu) / self.cpu)
        return max(self.floor, min(self.cap, wanted))


class FixedLimit:
    """The same interface with a constant limit (`upload(adaptive=False)`, and for comparison)."""

    def __init__(self, limit: int):
        self.limit = limit

    def observe(self, wait: float, cpu: float, crowd: int, now: float) -> int:
        return self.limit
