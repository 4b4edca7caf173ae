"""The lean signed PutSnapshotBlock (image_builds.put_block): what it sends, checked on the wire by
a recording HTTP server on 127.0.0.1 (signature re-derived from the request as received, the way
the service checks it), how it reports errors, and that uploads through it and through botocore
read back the same against the moto server."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, EndpointConnectionError

from image_builds import blocks, ebs_upload, put_block, retry
from tests.test_image_raw import FAST, read_back


class Recorder:
    """Records each request; answers with `status` (and an AWS error type when >= 300)."""

    def __init__(self, status: int = 201, error: str = ""):
        self.requests: list[tuple[str, str, dict, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_PUT(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((self.command, self.path, dict(self.headers.items()), body))
                payload = json.dumps({"message": "injected"}).encode() if status >= 300 else b""
                self.send_response(status)
                if error:
                    self.send_header("x-amzn-ErrorType", f"{error}:http://internal.amazon.com/coral/")
                self.send_header("x-amz-Checksum", self.headers.get("x-amz-Checksum", ""))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def ebs_client(url: str):
    return boto3.client("ebs", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE",
                        aws_secret_access_key="secret")


def test_the_request_is_signed_with_sigv4_and_an_unsigned_payload_as_aws_documents():
    rec = Recorder()
    try:
        ebs = ebs_client(rec.url)
        assert put_block.usable(ebs)
        data = os.urandom(512 * 1024)
        digest = hashlib.sha256(data).digest()
        out = put_block.BlockPutter(ebs).put("snap-1", 7, data, digest, blocks.b64(digest))
        assert out["ResponseMetadata"]["HTTPStatusCode"] == 201
    finally:
        rec.close()
    ((method, path, headers, body),) = rec.requests
    assert (method, path, body) == ("PUT", "/snapshots/snap-1/blocks/7", data)
    assert headers["x-amz-Checksum"] == blocks.b64(digest) and headers["x-amz-Data-Length"] == str(len(data))
    # AWS's model of PutSnapshotBlock: the body is not signed (the checksum headers protect the data)
    assert ebs.meta.service_model.operation_model("PutSnapshotBlock").auth_type == "v4-unsigned-body"
    assert headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"
    auth = headers["Authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") and "/us-east-1/ebs/aws4_request" in auth
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-checksum", "x-amz-content-sha256", "x-amz-data-length", "x-amz-date"} <= set(signed)
    # re-derive the signature from the request as the server received it
    lower = {k.lower(): v for k, v in headers.items()}
    request = AWSRequest(method=method, url=f"{rec.url}{path}", headers={k: lower[k] for k in signed}, data=body)
    request.context["timestamp"] = lower["x-amz-date"]
    signer = SigV4Auth(Credentials("AKIDEXAMPLE", "secret"), "ebs", "us-east-1")
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    assert auth.endswith(f"Signature={expected}")


@pytest.mark.parametrize("status, code, kind", [(400, "ValidationException", None),
                                                (429, "ThrottlingException", retry.THROTTLE),
                                                (503, "ServiceUnavailableException", retry.TRANSIENT)])
def test_service_errors_are_client_errors_that_retry_classifies(status, code, kind):
    rec = Recorder(status, code)
    try:
        with pytest.raises(ClientError) as err:
            put_block.BlockPutter(ebs_client(rec.url)).put("snap-1", 0, b"x" * 512, b"\0" * 32, "AA==")
    finally:
        rec.close()
    assert retry.error_code(err.value) == code and retry.classify(err.value) == kind


def test_a_refused_connection_is_a_transient_connection_error():
    rec = Recorder()
    url = rec.url
    rec.close()
    with pytest.raises(EndpointConnectionError) as err:
        put_block.BlockPutter(ebs_client(url)).put("snap-1", 0, b"x" * 512, b"\0" * 32, "AA==")
    assert retry.classify(err.value) == retry.TRANSIENT


def test_lean_and_botocore_uploads_read_back_the_same(aws, tmp_path):
    image = tmp_path / "disk.raw"
    image.write_bytes(os.urandom(20 * 512) + bytes(4 * 512))
    ebs, ec2 = ebs_upload.make_clients(workers=8)
    via_botocore = []
    ebs.meta.events.register("before-send.ebs.PutSnapshotBlock", lambda **kw: via_botocore.append(1))
    lean = ebs_upload.upload(image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1)
    assert via_botocore == []  # every block went through put_block, none through botocore's HTTP path
    plain = ebs_upload.upload(image, ebs=ebs, ec2=ec2, policy=FAST, progress=False, wait_interval=0.1, lean=False)
    assert len(via_botocore) == 24
    assert read_back(ebs, lean.snapshot_id) == read_back(ebs, plain.snapshot_id)
    assert lean.checksum == plain.checksum


def test_a_proxy_in_the_environment_falls_back_to_botocore(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert not put_block.usable(ebs_client("https://ebs.us-east-1.amazonaws.com"))


@pytest.mark.parametrize("token", [None, "FQoGZXIvYXdzEBYaDtemporary+token/=="])
def test_the_signature_is_the_one_botocore_computes_for_the_same_request(monkeypatch, token):
    """The putter writes this request's canonical form itself and keeps the day's signing key: the
    Authorization must still be byte for byte botocore's, with temporary credentials too, and a
    rotated secret (refreshed credentials) or a new day must not reuse the old key."""
    import datetime

    import botocore.auth

    ebs = ebs_client("http://127.0.0.1:8443/base")
    putter = put_block.BlockPutter(ebs)
    digest = hashlib.sha256(b"x").digest()
    headers = {"x-amz-Data-Length": "524288", "x-amz-Checksum": blocks.b64(digest),
               "x-amz-Checksum-Algorithm": "SHA256", "Content-Type": "application/octet-stream",
               "X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"}
    path = "/base/snapshots/snap-0123456789abcdef0/blocks/41"
    for secret, when in [("secret", datetime.datetime(2026, 12, 3, 8, 30, 1)),
                         ("secret", datetime.datetime(2026, 12, 4, 0, 0, 2)),
                         ("rotated", datetime.datetime(2026, 12, 4, 0, 0, 3))]:
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda when=when: when)
        request = AWSRequest(method="PUT", url=f"http://127.0.0.1:8443{path}", headers=dict(headers), data=b"x")
        SigV4Auth(Credentials("AKIDEXAMPLE", secret, token), "ebs", "us-east-1").add_auth(request)
        ours = putter.sign(path, dict(headers), "AKIDEXAMPLE", secret, token, when.timetuple())
        assert ours["Authorization"] == request.headers["Authorization"]
        assert ours["X-Amz-Date"] == request.headers["X-Amz-Date"]
        assert ours.get("X-Amz-Security-Token") == request.headers.get("X-Amz-Security-Token")
        assert ours["Host"] == "127.0.0.1:8443"


@pytest.mark.parametrize("head_size", [40, 300_000])
def test_head_and_block_arrive_whole_and_in_order_when_the_socket_takes_them_in_parts(head_size):
    """With a timeout the socket is non-blocking underneath, so one sendmsg of a large block
    returns after part of it: the rest must follow in order, whether the cut falls in the head or
    in the block."""
    import socket

    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    ours.settimeout(10)
    head, data = os.urandom(head_size), os.urandom(4 << 20)
    got = bytearray()
    reader = threading.Thread(target=lambda: [got.extend(c) for c in iter(lambda: theirs.recv(1 << 16), b"")])
    reader.start()
    try:
        put_block._send(ours, head, data)
    finally:
        ours.close()
        reader.join(10)
        theirs.close()
    assert bytes(got) == head + data


@pytest.mark.parametrize("snapshot_id", ["snap-1\r\nX-Evil: 1", "snap-1 HTTP/1.1", "snap-1\n"])
def test_a_snapshot_id_that_would_break_the_request_line_is_refused(snapshot_id):
    ebs = ebs_client("http://127.0.0.1:9")
    with pytest.raises(ValueError, match="control characters"):
        put_block.BlockPutter(ebs).put(snapshot_id, 0, b"x" * 512, b"\0" * 32, "AA==")
