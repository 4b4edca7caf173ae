"""The moto fixture waits for a slow server as long as the run's bound, not a fixed few seconds: on a
loaded 2-core machine a reset once took longer than 5 s and errored four tests of a full run."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.conftest import SERVER_WAIT, reset_server


class _SlowReset(BaseHTTPRequestHandler):
    delay = 6.0  # longer than the fixed 5 s the fixture used to allow

    def do_POST(self):  # noqa: N802 (http.server's naming)
        time.sleep(self.delay)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


def test_reset_waits_for_a_slow_server():
    assert SERVER_WAIT >= 60
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowReset)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        reset_server(f"http://127.0.0.1:{server.server_address[1]}")
        assert time.monotonic() - started >= _SlowReset.delay
    finally:
        server.shutdown()
