"""A minimal local stand-in for the EBS direct API, for bench_upload.py (not a test, not a mock of
everything): StartSnapshot (returns --block-size, default AWS's 524288), PutSnapshotBlock (checks
the block's SHA-256 and length, sleeps --latency-ms to stand in for the network and the service),
CompleteSnapshot (checks ChangedBlocksCount and the LINEAR aggregate), plus the two EC2 calls the
uploader makes (DescribeSnapshots -> completed, DeleteSnapshot) and GET /stats/<snapshot> for the
bench. HTTP/1.1 keep-alive, one thread per connection. Prints its port on stdout, then serves.

    python bench/bench_upload_sink.py --port 0 --block-size 524288 --latency-ms 10
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    def __init__(self, block_size: int, latency: float, verify: bool):
        self.block_size = block_size
        self.latency = latency
        self.verify = verify
        self.lock = threading.Lock()
        self.snapshots: dict[str, dict] = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: State

    def log_message(self, *args):  # quiet
        pass

    # ------------------------------------------------------------ helpers
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json", headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _json(self, status: int, obj: dict, headers: dict | None = None):
        self._send(status, json.dumps(obj).encode(), headers=headers)

    def _error(self, status: int, code: str, message: str):
        self._json(status, {"message": message}, headers={"x-amzn-ErrorType": code})

    # ------------------------------------------------------------ routes
    def do_POST(self):  # noqa: N802 - http.server naming
        path = urllib.parse.urlparse(self.path).path
        body = self._body()
        if path == "/snapshots":
            req = json.loads(body or b"{}")
            sid = "snap-" + uuid.uuid4().hex[:17]
            with self.state.lock:
                self.state.snapshots[sid] = {"blocks": {}, "bytes": 0, "status": "pending", "puts": 0,
                                             "signed_unsigned_payload": 0}
            return self._json(201, {"SnapshotId": sid, "BlockSize": self.state.block_size, "Status": "pending",
                                    "VolumeSize": req.get("VolumeSize"), "OwnerId": "123456789012",
                                    "StartTime": time.time(), "Description": req.get("Description", "")})
        m = re.fullmatch(r"/snapshots/completion/([^/]+)", path)
        if m:
            return self._complete(m.group(1))
        if path == "/":  # EC2 query protocol
            return self._ec2(urllib.parse.parse_qs(body.decode()))
        return self._error(404, "ResourceNotFoundException", f"no route {path}")

    def do_PUT(self):  # noqa: N802
        m = re.fullmatch(r"/snapshots/([^/]+)/blocks/(\d+)", urllib.parse.urlparse(self.path).path)
        data = self._body()
        if not m:
            return self._error(404, "ResourceNotFoundException", "no route")
        sid, index = m.group(1), int(m.group(2))
        snap = self.state.snapshots.get(sid)
        if snap is None:
            return self._error(404, "ResourceNotFoundException", f"The snapshot '{sid}' does not exist.")
        checksum = self.headers.get("x-amz-Checksum", "")
        if len(data) != self.state.block_size or int(self.headers.get("x-amz-Data-Length", -1)) != len(data):
            return self._error(400, "ValidationException", f"block {index}: length {len(data)}")
        digest = hashlib.sha256(data).digest() if self.state.verify else base64.b64decode(checksum)
        if self.state.verify and base64.b64encode(digest).decode() != checksum:
            return self._error(400, "ValidationException", f"block {index}: checksum mismatch")
        if self.state.latency:
            time.sleep(self.state.latency)
        with self.state.lock:
            snap["blocks"][index] = digest
            snap["bytes"] += len(data)
            snap["puts"] += 1
            if (self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 ")
                    and self.headers.get("X-Amz-Content-SHA256") == "UNSIGNED-PAYLOAD"):
                snap["signed_unsigned_payload"] += 1
        self._send(201, b"", headers={"x-amz-Checksum": checksum, "x-amz-Checksum-Algorithm": "SHA256"})

    def do_GET(self):  # noqa: N802
        m = re.fullmatch(r"/stats/([^/]+)", urllib.parse.urlparse(self.path).path)
        snap = self.state.snapshots.get(m.group(1)) if m else None
        if snap is None:
            return self._error(404, "ResourceNotFoundException", "no such snapshot")
        self._json(200, {"blocks": len(snap["blocks"]), "puts": snap["puts"], "bytes": snap["bytes"],
                         "status": snap["status"], "signed_unsigned_payload": snap["signed_unsigned_payload"]})

    def _complete(self, sid: str):
        snap = self.state.snapshots.get(sid)
        if snap is None:
            return self._error(404, "ResourceNotFoundException", f"The snapshot '{sid}' does not exist.")
        count = int(self.headers.get("x-amz-ChangedBlocksCount", -1))
        if count != len(snap["blocks"]):
            return self._error(400, "ValidationException", f"ChangedBlocksCount {count} != {len(snap['blocks'])}")
        if self.headers.get("x-amz-Checksum") is not None:
            if self.headers.get("x-amz-Checksum-Aggregation-Method") != "LINEAR":
                return self._error(400, "ValidationException", "aggregation method must be LINEAR")
            h = hashlib.sha256()
            for i in sorted(snap["blocks"]):
                h.update(snap["blocks"][i])
            if base64.b64encode(h.digest()).decode() != self.headers["x-amz-Checksum"]:
                return self._error(400, "ValidationException", "aggregate checksum mismatch")
        snap["status"] = "completed"
        self._json(202, {"Status": "completed"})

    def _ec2(self, form: dict):
        action = form.get("Action", [""])[0]
        ns = "http://ec2.amazonaws.com/doc/2016-11-15/"
        if action == "DescribeSnapshots":
            sid = form.get("SnapshotId.1", [""])[0]
            snap = self.state.snapshots.get(sid)
            items = "" if snap is None else (
                f"<item><snapshotId>{sid}</snapshotId><status>{snap['status']}</status><progress>100%</progress>"
                f"<ownerId>123456789012</ownerId><volumeSize>1</volumeSize></item>")
            xml = (f'<DescribeSnapshotsResponse xmlns="{ns}"><requestId>r</requestId>'
                   f"<snapshotSet>{items}</snapshotSet></DescribeSnapshotsResponse>")
            return self._send(200, xml.encode(), ctype="text/xml")
        if action == "DeleteSnapshot":
            sid = form.get("SnapshotId", [""])[0]
            with self.state.lock:
                self.state.snapshots.pop(sid, None)
            xml = (f'<DeleteSnapshotResponse xmlns="{ns}"><requestId>r</requestId>'
                   "<return>true</return></DeleteSnapshotResponse>")
            return self._send(200, xml.encode(), ctype="text/xml")
        xml = (f"<Response><Errors><Error><Code>InvalidAction</Code><Message>{action}</Message></Error></Errors>"
               "<RequestID>r</RequestID></Response>")
        return self._send(400, xml.encode(), ctype="text/xml")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--block-size", type=int, default=524288, help="BlockSize StartSnapshot returns (AWS: 524288)")
    ap.add_argument("--latency-ms", type=float, default=0.0, help="sleep per PutSnapshotBlock (network + service)")
    ap.add_argument("--no-verify", action="store_true", help="skip the per-block SHA-256 check (less sink CPU)")
    args = ap.parse_args(argv)
    Handler.state = State(args.block_size, args.latency_ms / 1000.0, not args.no_verify)
    server = Server(("127.0.0.1", args.port), Handler)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
