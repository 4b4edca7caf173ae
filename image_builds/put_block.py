"""A lean, signed PutSnapshotBlock: the one call a dense upload makes thousands of times per GiB.

botocore's `put_snapshot_block` costs 1.1-1.4 ms of client CPU per call (parameter validation,
serialisation, events, endpoint rules, user agent, urllib3) on top of the block's own costs. This
path keeps what matters and drops the rest:

- the request is signed with botocore's own SigV4 signer and the client's credentials (refreshable
  ones are refreshed as botocore would), region and endpoint;
- the payload is not signed (`X-Amz-Content-SHA256: UNSIGNED-PAYLOAD`), as AWS's model of the call
  says (`v4-unsigned-body`) and botocore sends over HTTPS: the block's SHA-256, computed once for
  `x-amz-Checksum`, is what protects the data, and the service checks it;
- one `http.client` connection per worker thread, kept alive, with the client's connect and read
  timeouts; a broken connection is dropped and the error raised as botocore's
  `EndpointConnectionError`/`ReadTimeoutError`, service errors as `ClientError` with the AWS error
  code, so `retry.call` classifies and retries them exactly as before (throttling back-off included);
- the client's `provide-client-params` and `before-call` events for PutSnapshotBlock are still
  emitted, so fault injection, Stubber and call capture see every call; a `before-call` handler
  that returns a response short-circuits the HTTP call as it does in botocore.

Used by `ebs_upload.upload` when the client is a plain botocore client over http(s) without a
proxy; anything else (HTTPS_PROXY set, an unusual client) goes through botocore unchanged.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

OPERATION = "PutSnapshotBlock"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def usable(ebs) -> bool:
    """True when `ebs` is a botocore client this path can stand in for (credentials, endpoint, no proxy)."""
    meta = getattr(ebs, "meta", None)
    signer = getattr(ebs, "_request_signer", None)
    if meta is None or signer is None or getattr(signer, "_credentials", None) is None:
        return False
    if any(os.environ.get(v) for v in _PROXY_VARS) or (meta.config.proxies or {}):
        return False
    return urlsplit(meta.endpoint_url).scheme in ("http", "https")


class BlockPutter:
    """`put(snapshot_id, index, data, sha256_digest, checksum_b64)`, thread-safe (a connection per thread)."""

    def __init__(self, ebs):
        self.ebs = ebs
        self.url = urlsplit(ebs.meta.endpoint_url)
        self.base_path = self.url.path.rstrip("/")
        self.region = ebs.meta.region_name
        self.credentials = ebs._request_signer._credentials  # the client's own (refreshable) credentials
        self.service = ebs.meta.service_model.signing_name or "ebs"
        self.connect_timeout = ebs.meta.config.connect_timeout
        self.read_timeout = ebs.meta.config.read_timeout
        self.model = ebs.meta.service_model.operation_model(OPERATION)
        self.events = ebs.meta.events
        self.service_id = ebs.meta.service_model.service_id.hyphenize()
        self.local = threading.local()

    # ------------------------------------------------------------ connection per thread
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.url.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.url.hostname, self.url.port, timeout=self.connect_timeout)
            self.local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self.local, "conn", None)
        if conn is not None:
            conn.close()
            self.local.conn = None

    def close(self) -> None:
        """Close this thread's connection."""
        self._drop()

    # ------------------------------------------------------------ one call
    def put(self, snapshot_id: str, index: int, data: bytes, digest: bytes, checksum_b64: str) -> dict[str, Any]:
        params = {"SnapshotId": snapshot_id, "BlockIndex": index, "BlockData": data, "DataLength": len(data),
                  "Checksum": checksum_b64, "ChecksumAlgorithm": "SHA256"}
        self.events.emit(f"provide-client-params.{self.service_id}.{OPERATION}", params=params, model=self.model,
                         context={})
        path = f"{self.base_path}/snapshots/{snapshot_id}/blocks/{index}"
        headers = {"x-amz-Data-Length": str(len(data)), "x-amz-Checksum": checksum_b64,
                   "x-amz-Checksum-Algorithm": "SHA256", "Content-Type": "application/octet-stream",
                   "X-Amz-Content-SHA256": UNSIGNED_PAYLOAD}
        request_dict = {"url_path": path, "query_string": {}, "method": "PUT", "headers": headers, "body": data,
                        "url": f"{self.url.scheme}://{self.url.netloc}{path}", "context": {}}
        _, short = self.events.emit_until_response(f"before-call.{self.service_id}.{OPERATION}", model=self.model,
                                                   params=request_dict, request_signer=None, context={})
        if short is not None:  # a handler answered instead of the service (fault injection, Stubber)
            http_response, parsed = short
            status = getattr(http_response, "status_code", 200)
            if status >= 300 or "Error" in parsed:
                raise ClientError(parsed, OPERATION)
            return parsed
        request = AWSRequest(method="PUT", url=request_dict["url"], headers=headers, data=data)
        SigV4Auth(self.credentials.get_frozen_credentials(), self.service, self.region).add_auth(request)
        conn = self._connection()
        try:
            conn.timeout = self.connect_timeout
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(self.read_timeout)
            conn.request("PUT", path, body=data, headers=dict(request.headers.items()))
            resp = conn.getresponse()
            body = resp.read()
        except TimeoutError as exc:
            self._drop()
            raise ReadTimeoutError(endpoint_url=request_dict["url"], error=exc) from exc
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise EndpointConnectionError(endpoint_url=request_dict["url"], error=exc) from exc
        if resp.status >= 300:
            raise ClientError(_error(resp, body), OPERATION)
        return {"Checksum": resp.getheader("x-amz-Checksum"), "ChecksumAlgorithm":
                resp.getheader("x-amz-Checksum-Algorithm"), "ResponseMetadata": {"HTTPStatusCode": resp.status}}


def _error(resp: http.client.HTTPResponse, body: bytes) -> dict[str, Any]:
    """A botocore-style parsed error from a REST-JSON error response (x-amzn-ErrorType + message)."""
    code = (resp.getheader("x-amzn-ErrorType") or "").split(":")[0]
    message = ""
    try:
        doc = json.loads(body or b"{}")
        code = code or str(doc.get("__type", doc.get("code", ""))).split("#")[-1]
        message = doc.get("message") or doc.get("Message") or ""
    except ValueError:
        message = body[:200].decode("utf-8", "replace")
    return {"Error": {"Code": code or f"HTTP{resp.status}", "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": resp.status, "HTTPHeaders": dict(resp.getheaders())}}
