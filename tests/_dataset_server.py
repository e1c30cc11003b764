"""A real HTTP server on 127.0.0.1 that serves dataset files (tests run offline).

Files are served from a dict ``name -> bytes``; ``truncate`` makes the server announce the full
Content-Length but close the connection halfway, as a dropped connection would.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class DatasetServer:
    files: dict[str, bytes] = field(default_factory=dict)
    truncate: bool = False
    requests: list[str] = field(default_factory=list)
    url: str = ""


@contextmanager
def serve_datasets(files: dict[str, bytes]) -> Iterator[DatasetServer]:
    """Serve ``files`` at ``server.url/<name>`` until the block ends."""
    state = DatasetServer(files=dict(files))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            name = self.path.lstrip("/")
            state.requests.append(name)
            body = state.files.get(name)
            if body is None:
                self.send_error(404, "File not found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if state.truncate else body)
            if state.truncate:
                self.close_connection = True

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
