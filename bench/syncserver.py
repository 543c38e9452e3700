"""A stand-in homeserver for the loop-stall benchmark, run as its own process
(``python -m bench.syncserver FILE``) so that serving never competes for the
benchmarked interpreter's GIL.

``GET /_matrix/client/v3/sync`` without ``since`` answers FILE's bytes (the
initial sync); with ``since`` it long-polls for ``timeout`` ms and answers
an empty batch. ``/_matrix/client/versions`` answers too, to warm a client
up. It prints its port on stdout once listening.
"""

from __future__ import annotations

import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def serve(body: bytes) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/_matrix/client/versions":
                self._answer(200, b'{"versions":["v1.11"]}')
                return
            if url.path != "/_matrix/client/v3/sync":
                self._answer(404, b'{"errcode":"M_UNRECOGNIZED","error":"bench"}')
                return
            query = parse_qs(url.query)
            if "since" not in query:
                self._answer(200, body)
                return
            timeout_ms = int(query.get("timeout", ["30000"])[0])
            time.sleep(min(timeout_ms, 60_000) / 1000)
            since = query["since"][0].encode()
            self._answer(200, b'{"next_batch":"' + since + b'"}')

        def _answer(self, status: int, payload: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    serve(Path(sys.argv[1]).read_bytes())
