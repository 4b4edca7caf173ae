"""An HTTP proxy in front of the moto server that adds the one EC2 check moto lacks: AMI names are
unique per account and region. AWS answers a RegisterImage or CreateImage whose name an existing
AMI has with 400 InvalidAMIName.Duplicate; moto accepts it. The proxy answers the same way, and
holds a lock from the check until moto has answered, so the check and the create are atomic for
every client (threads, processes, Packer), as they are on AWS. Everything else passes through.

`meet=N`: the first N creates wait for each other (up to a minute) before the check, so N builds
that all reach their create really race there however their start-up times fall; no test has to
make its images big enough for the uploads to overlap by luck.
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3

CREATES = ("RegisterImage", "CreateImage")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class UniqueNamesProxy:
    """`with UniqueNamesProxy(moto_url) as url:` point the clients at `url`; `duplicates` counts refusals."""

    def __init__(self, upstream: str, *, meet: int = 1):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.meet = threading.Barrier(meet, timeout=60)
        self.ec2 = boto3.client("ec2", endpoint_url=upstream, region_name="us-east-1")
        self.lock = threading.Lock()
        self.duplicates = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = urllib.parse.parse_qs(body.decode("latin-1")) if self.command == "POST" else {}
                action = (form.get("Action") or [""])[0]
                if action in CREATES:
                    proxy.wait_for_the_others()
                    with proxy.lock:
                        taken = proxy.taken((form.get("Name") or [""])[0])
                        if taken:
                            return self._duplicate(form["Name"][0], taken)
                        return self._send(*proxy.relay(self.command, self.path, self.headers, body))
                return self._send(*proxy.relay(self.command, self.path, self.headers, body))

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

            def _duplicate(self, name, ami):
                proxy.duplicates += 1
                xml = (f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InvalidAMIName.Duplicate'
                       f'</Code><Message>AMI name {name} is already in use by AMI {ami}</Message></Error></Errors>'
                       f'<RequestID>{uuid.uuid4()}</RequestID></Response>').encode()
                self._send(400, [("Content-Type", "text/xml")], xml)

            def _send(self, status, headers, data):
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for_the_others(self) -> None:
        """Hold a create until `meet` of them have arrived; later ones (and a broken wait) pass at once."""
        try:
            self.meet.wait()
        except threading.BrokenBarrierError:
            pass
        self.meet.abort()  # one meeting only: a Barrier would start over and hold the next `meet` creates

    def taken(self, name: str) -> str | None:
        """The id of an AMI of this account named `name`, else None."""
        images = self.ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
        return images[0]["ImageId"] if images else None

    def relay(self, method, path, headers, body):
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.request(method, path, body=body or None,
                         headers={k: v for k, v in headers.items() if k.lower() not in _HOP})
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def __enter__(self) -> str:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
