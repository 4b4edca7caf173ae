"""Is an endpoint AWS itself, or a local stand-in (a moto server)?

An AMI id made by a local API exists nowhere else: a lock entry resolved against one must not reach a
stack that deploys to AWS. AWS's own endpoints are HTTPS on AWS's domains (commercial, China, the
dual-stack `api.aws`, and the ISO partitions); anything else counts as local.
"""

from __future__ import annotations

from urllib.parse import urlsplit

AWS_DOMAINS = ("amazonaws.com", "amazonaws.com.cn", "api.aws", "c2s.ic.gov", "sc2s.sgov.gov")


def is_aws_endpoint(url: str | None) -> bool:
    """True for an HTTPS URL on one of AWS's domains; False for "" (unknown), http, localhost, IPs, others."""
    if not url:
        return False
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    return parts.scheme == "https" and any(host == d or host.endswith("." + d) for d in AWS_DOMAINS)


def describe(url: str | None) -> str:
    """How a lock line names where an entry was resolved."""
    return url if url else "an unrecorded endpoint (a lock written before endpoints were recorded)"
