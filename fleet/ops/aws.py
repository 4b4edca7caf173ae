"""One way to make boto3 clients: explicit timeouts and adaptive retries on every call,
and the endpoint from `--endpoint-url` or AWS_ENDPOINT_URL (a moto server in tests)."""

from __future__ import annotations

import os
import threading

import boto3
from botocore.config import Config

_last = threading.local()


def last_operation() -> str | None:
    """`service:Operation` of the last AWS call this thread made through `client()`: names the API in
    errors that do not (an endpoint that answers an API it lacks with an HTML page)."""
    return getattr(_last, "operation", None)


def _remember(model=None, **_) -> None:
    if model is not None:
        _last.operation = f"{model.service_model.service_name}:{model.name}"


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None,
           connect_timeout: float = 10, read_timeout: float = 60, max_attempts: int = 8, **config):
    """A boto3 client with timeouts and retries; `endpoint_url` wins over AWS_ENDPOINT_URL."""
    cfg = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        **config,
    )
    made = boto3.session.Session().client(
        service,
        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        config=cfg,
    )
    made.meta.events.register("before-call", _remember)
    return made
