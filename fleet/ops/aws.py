"""One way to make boto3 clients: explicit timeouts and adaptive retries on every call,
and the endpoint from `--endpoint-url` or AWS_ENDPOINT_URL (a moto server in tests)."""

from __future__ import annotations

import os

import boto3
from botocore.config import Config


def client(service: str, *, region: str | None = None, endpoint_url: str | None = None,
           connect_timeout: float = 10, read_timeout: float = 60, max_attempts: int = 8, **config):
    """A boto3 client with timeouts and retries; `endpoint_url` wins over AWS_ENDPOINT_URL."""
    cfg = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        **config,
    )
    return boto3.session.Session().client(
        service,
        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
        config=cfg,
    )
