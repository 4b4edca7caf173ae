"""Retries for AWS calls: classify an error, back off exponentially with full jitter, try again.

The uploader makes its clients with botocore's own retries turned off (`max_attempts=1`), so this
is its one retry layer: attempts are counted once, and faults injected in tests (botocore
`before-call` hooks, which bypass botocore's retries) go through the same path as real ones. Other
modules accept any client; with `fleet.ops.aws.client`'s adaptive retries underneath, this layer only
adds what botocore does not retry (e.g. "does not exist" right after a create).

Kinds of retryable errors:
- ``throttle``: ThrottlingException, RequestThrottledException, ... or HTTP 429;
- ``transient``: ServiceUnavailable, InternalServerException, 5xx, connection errors, timeouts;
- ``not-found``: ResourceNotFoundException / "snapshot does not exist"; only retried while the
  caller's deadline has not passed (EBS direct says this for a while right after StartSnapshot,
  coldsnap#43), otherwise it is permanent.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

T = TypeVar("T")

THROTTLE = "throttle"
TRANSIENT = "transient"
NOT_FOUND = "not-found"

THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
    "BandwidthLimitExceeded", "EC2ThrottledException", "ProvisionedThroughputExceededException",
})
TRANSIENT_CODES = frozenset({
    "ServiceUnavailable", "ServiceUnavailableException", "Unavailable", "InternalServerException",
    "InternalError", "InternalFailure", "InternalServerError", "RequestTimeout", "RequestTimeoutException",
    "PriorRequestNotComplete",
})
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "InvalidSnapshot.NotFound"})


class Cancelled(Exception):
    """Raised instead of retrying when the caller's cancel event is set (another worker failed)."""


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError, else ''."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def http_status(exc: BaseException) -> int | None:
    """The HTTP status of a ClientError, if known."""
    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def classify(exc: BaseException) -> str | None:
    """THROTTLE, TRANSIENT, NOT_FOUND, or None for an error that retrying cannot fix."""
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):  # includes connect/read timeouts
        return TRANSIENT
    if not isinstance(exc, ClientError):
        return None
    code = error_code(exc)
    status = http_status(exc)
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    if code in THROTTLING_CODES or status == 429:
        return THROTTLE
    if code in NOT_FOUND_CODES or "does not exist" in message:
        return NOT_FOUND
    if code in TRANSIENT_CODES or (status is not None and status >= 500):
        return TRANSIENT
    return None


def backoff_delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform(0, min(cap, base * 2**attempt)), attempt counted from 0."""
    ceiling = min(cap, base * (2 ** min(attempt, 32)))
    return (rng or random).uniform(0, ceiling)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry. `max_attempts` bounds throttle/transient errors; NOT_FOUND is bounded by
    the deadline passed to `call` (wall clock), so ~2 min after StartSnapshot still works with
    short delays. `sleep` and `clock` are injectable for tests."""

    max_attempts: int = 10
    base_delay: float = 0.2
    max_delay: float = 20.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)


def call(fn: Callable[[], T], *, policy: RetryPolicy, what: str, not_found_deadline: float | None = None,
         cancel: threading.Event | None = None, on_retry: Callable[[str, BaseException], None] | None = None) -> T:
    """Run `fn()` until it succeeds or fails permanently; re-raise the last error.

    `not_found_deadline` (a `policy.clock()` time): NOT_FOUND errors are retried until then.
    `cancel`: stop waiting and raise `Cancelled` as soon as it is set. `on_retry(kind, error)` is
    called before every wait (for counters in tests and benchmarks)."""
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below, re-raised when permanent
            kind = classify(exc)
            if kind is None:
                raise
            if kind == NOT_FOUND:
                remaining = (not_found_deadline - policy.clock()) if not_found_deadline is not None else 0.0
                if remaining <= 0:
                    raise
                delay = min(remaining, backoff_delay(attempt, base=policy.base_delay, cap=policy.max_delay))
            else:
                if attempt + 1 >= policy.max_attempts:
                    raise
                delay = backoff_delay(attempt, base=policy.base_delay, cap=policy.max_delay)
            if on_retry is not None:
                on_retry(kind, exc)
            attempt += 1
            if cancel is not None:
                if cancel.wait(delay):
                    raise Cancelled(f"{what}: cancelled while retrying after {exc}") from exc
            else:
                policy.sleep(delay)
