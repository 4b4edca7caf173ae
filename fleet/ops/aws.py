"""One way to make boto3 clients, and one way to say that an AWS call failed.

`client()`: short timeouts, bounded retries, and the endpoint from `--endpoint-url` or
AWS_ENDPOINT_URL (a moto server in tests). Every retry prints one line on stderr
("retrying (n/N) ..."), so a command is never silent while it waits; when nothing answers at all
(connection refused, connect or read timeouts) the call gives up within NO_ANSWER_BUDGET seconds
instead of botocore's minute of silent attempts.

`failure_line()`: any botocore error (no credentials, an unreachable endpoint, an expired token,
access denied, throttling past the retries, an answer that is not AWS's) as one line naming the
operation and what to do. fleet.cli runs every subcommand through it (`run_reporting`), and so does
the image build the Pulumi Command runs, so no command ends in a botocore traceback.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    CredentialRetrievalError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    TokenRetrievalError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

CONNECT_TIMEOUT = 3.0   # seconds to open a connection; AWS answers in milliseconds
READ_TIMEOUT = 8.0      # seconds for an answer once connected (callers moving data pass their own)
MAX_ATTEMPTS = 5        # first try + 4 retries (botocore's adaptive mode for throttling and 5xx)
NO_ANSWER_BUDGET = 18.0  # seconds after which a call that never got any answer stops retrying
NO_ANSWER_BACKOFF = (1.0, 2.0, 4.0, 8.0)  # waits between attempts that got no answer (+ up to 10% jitter)

_last = threading.local()
_data_lock = threading.Lock()
_data_loader = None  # botocore's data loader shared by every new_session() of this process


def new_session() -> boto3.session.Session:
    """A new boto3 session (its own credentials and settings) whose botocore data files come from
    one loader per process: a fresh session parses its services' models and endpoint rules again
    (EC2's model is several MB of JSON, ~0.1 s a client), and those files never change under a
    running process."""
    global _data_loader
    core = botocore.session.get_session()
    with _data_lock:
        if _data_loader is not None:
            core.register_component("data_loader", _data_loader)
        made = boto3.session.Session(botocore_session=core)
        loader = core.get_component("data_loader")
        paths = loader.search_paths  # boto3 appends its own data folder on every session: keep one
        paths[:] = list(dict.fromkeys(paths))
        _data_loader = loader
    return made


def log_line(text: str) -> None:
    """Progress lines of the AWS layer (retries) go to stderr, looked up at call time (tests capture it)."""
    print(text, file=sys.stderr, flush=True)


def last_operation() -> str | None:
    """`service:Operation` of the last AWS call this thread made through `client()`: names the API in
    errors that do not (an endpoint that answers an API it lacks with an HTML page)."""
    return getattr(_last, "operation", None)


def last_endpoint() -> str | None:
    """The endpoint URL of the last client this thread called through (for "no answer from ...")."""
    return getattr(_last, "endpoint", None)


def _no_answer(exc: BaseException | None) -> bool:
    """Errors where the endpoint said nothing at all (as opposed to an error answer)."""
    return isinstance(exc, (BotoConnectionError, ReadTimeoutError, ConnectionClosedError))


def no_answer_delay(attempt: int, elapsed: float, attempt_cost: float, *, max_attempts: int | None = None,
                    budget: float | None = None) -> float | None:
    """The wait before retry number `attempt` (1-based) of a call that got no answer after `elapsed`
    seconds, or None to give up: out of attempts, or the retry (which may again take `attempt_cost`,
    the timeout that just expired) could not end inside the budget."""
    max_attempts = MAX_ATTEMPTS if max_attempts is None else max_attempts
    budget = NO_ANSWER_BUDGET if budget is None else budget
    if attempt >= max_attempts:
        return None
    delay = NO_ANSWER_BACKOFF[min(attempt, len(NO_ANSWER_BACKOFF)) - 1]
    if elapsed + delay * 1.1 + attempt_cost > budget:
        return None
    return delay


def _error_summary(response=None, caught_exception=None) -> str:
    """The previous attempt's error, short: the exception, or the error code AWS answered."""
    if caught_exception is not None:
        return " ".join(str(caught_exception).split())
    parsed = response[1] if response else {}
    code = parsed.get("Error", {}).get("Code")
    status = parsed.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code or (f"HTTP {status}" if status else "an error")


class _Hooks:
    """botocore event handlers of one client: remember the operation, bound the no-answer retries,
    announce every retry."""

    def __init__(self, endpoint: str, connect_timeout: float, read_timeout: float, max_attempts: int):
        self.endpoint, self.max_attempts = endpoint, max_attempts
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout

    def before_call(self, model=None, context=None, **_) -> None:
        if model is not None:
            _last.operation = f"{model.service_model.service_name}:{model.name}"
        _last.endpoint = self.endpoint
        if context is not None:
            context["fleet-started"] = time.monotonic()

    def needs_retry(self, attempts=1, response=None, caught_exception=None, request_dict=None, **_):
        """Registered first: for no-answer errors this decides (our bounded schedule; botocore's own
        would keep trying for about a minute); for every other error botocore's retry mode decides."""
        context = (request_dict or {}).get("context", {})
        context["fleet-last-error"] = _error_summary(response, caught_exception)
        if not _no_answer(caught_exception):
            return None
        elapsed = time.monotonic() - context.get("fleet-started", time.monotonic())
        cost = self.read_timeout if isinstance(caught_exception, ReadTimeoutError) else self.connect_timeout
        delay = no_answer_delay(attempts, elapsed, cost, max_attempts=self.max_attempts)
        if delay is None:
            return False  # a non-None answer stops botocore's handler from retrying
        return delay * (1 + random.random() / 10)

    def request_created(self, request=None, operation_name=None, **_) -> None:
        retries = getattr(request, "context", {}).get("retries") or {}
        attempt = retries.get("attempt", 1)
        if attempt > 1:
            why = request.context.get("fleet-last-error", "an error")
            log_line(f"fleet: {last_operation() or operation_name} ({why}): "
                     f"retrying ({attempt - 1}/{self.max_attempts - 1}) ...")


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None,
           connect_timeout: float | None = None, read_timeout: float | None = None,
           max_attempts: int | None = None, session: boto3.session.Session | None = None, **config):
    """A boto3 client with timeouts and bounded, announced retries; `endpoint_url` wins over AWS_ENDPOINT_URL.
    Unset timeouts and attempts take the module's values (read at call time). `session`: share one among
    several clients (each new session loads botocore's endpoint and service data again, ~0.1 s a client)."""
    connect_timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
    read_timeout = READ_TIMEOUT if read_timeout is None else read_timeout
    max_attempts = MAX_ATTEMPTS if max_attempts is None else max_attempts
    cfg = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "adaptive", "total_max_attempts": max_attempts},
        **config,
    )
    made = (session or new_session()).client(
        service,
        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        config=cfg,
    )
    hooks = _Hooks(made.meta.endpoint_url, connect_timeout, read_timeout, max_attempts)
    made.meta.events.register("before-call", hooks.before_call)
    # on the service's own event name, first: botocore calls more specific names first, and its retry
    # handler sits on this one
    service_id = made.meta.service_model.service_id.hyphenize()
    made.meta.events.register_first(f"needs-retry.{service_id}", hooks.needs_retry)
    made.meta.events.register("request-created", hooks.request_created)
    return made


# -- one line per failure ------------------------------------------------------------------------------

_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess",
           "Forbidden", "AuthorizationError"}
_BAD_CREDENTIALS = {"AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch",
                    "InvalidAccessKeyId", "IncompleteSignature", "InvalidSignatureException"}
_THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
              "TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "SlowDown",
              "EC2ThrottledException"}
_ENDPOINT_HINT = "check --endpoint-url / AWS_ENDPOINT_URL and the network"


def is_aws_error(exc: BaseException) -> bool:
    """A botocore error (what `failure_line` turns into one line)."""
    return isinstance(exc, (BotoCoreError, ClientError, ResponseParserError))


def failure_line(exc: BaseException) -> str:
    """What failed and what to do, on one line (no "fleet <command>:" prefix)."""
    op = getattr(exc, "operation_name", None)
    if isinstance(exc, ClientError) and op:
        service = last_operation().split(":")[0] if last_operation() else None
        op = f"{service}:{op}" if service else op
    op = op or last_operation() or "an AWS call"
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = " ".join(str(exc.response.get("Error", {}).get("Message", "")).split())
        said = f"{code}: {message}" if message else code
        if code in _EXPIRED:
            return f"{op}: the AWS credentials have expired ({said}); refresh them (e.g. `aws sso login`, or a new " \
                   "session token) and run the command again"
        if code in _DENIED:
            return f"{op}: access denied ({said}); the identity running fleet needs permission for {op}"
        if code in _BAD_CREDENTIALS:
            return f"{op}: AWS did not accept the credentials ({said}); check AWS_PROFILE / AWS_ACCESS_KEY_ID"
        if code in _THROTTLED:
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts")
            after = f" after {attempts + 1} attempts" if attempts is not None else ""
            return f"{op}: throttled by AWS{after} ({said}); wait a minute and run the command again"
        return f"{op} failed: {said}"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return (f"{op}: no AWS credentials found; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                "(any values for a local endpoint such as moto)")
    if isinstance(exc, (TokenRetrievalError, CredentialRetrievalError)):
        return f"{op}: the AWS credentials could not be refreshed ({exc}); log in again (e.g. `aws sso login`)"
    if isinstance(exc, ProfileNotFound):
        return f"{op}: {exc}; set AWS_PROFILE to a profile in ~/.aws/config"
    if isinstance(exc, NoRegionError):
        return f"{op}: no AWS region; pass --region or set AWS_REGION"
    if _no_answer(exc):
        where = getattr(exc, "kwargs", {}).get("endpoint_url") or last_endpoint() or "the endpoint"
        return f"{op}: no answer from {where} ({' '.join(str(exc).split())}); {_ENDPOINT_HINT}"
    if isinstance(exc, ResponseParserError):
        return (f"{op} failed: the endpoint's answer is not an AWS response (does it implement this API?); "
                f"{_ENDPOINT_HINT}")
    return f"{op} failed: {' '.join(str(exc).split())}"
