"""connect(): one quick try for a store that is gone, longer ones for a server that is slow."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tsdl.errors import TrackingError
from tsdl.tracking.store import PROBE_TIMEOUTS_S, connect


class _SlowFirstAnswer(BaseHTTPRequestHandler):
    """MLflow's REST API as a busy fresh server gives it: the first request gets no answer for
    longer than connect()'s first timeout, the next ones an empty experiment search."""

    requests: list[float] = []

    def _answer(self) -> None:
        self.requests.append(time.monotonic())
        if len(self.requests) == 1:
            time.sleep(PROBE_TIMEOUTS_S[0] + 1)
        body = b'{"experiments": []}'
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up on this one

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[tuple[str, list[float]]]:
    _SlowFirstAnswer.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowFirstAnswer)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _SlowFirstAnswer.requests
    finally:
        server.shutdown()
        server.server_close()


def test_a_server_that_answers_the_second_request_is_connected(
    slow_server: tuple[str, list[float]],
) -> None:
    uri, requests = slow_server
    start = time.monotonic()
    client = connect(uri)
    assert client.search_experiments() == []
    assert len(requests) >= 2  # the first try timed out, the second was answered
    assert PROBE_TIMEOUTS_S[0] <= time.monotonic() - start < PROBE_TIMEOUTS_S[0] + 10


def test_a_refused_connection_fails_at_once_with_one_line() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(TrackingError) as err:
        connect(f"http://127.0.0.1:{port}")
    assert time.monotonic() - start < PROBE_TIMEOUTS_S[0]
    assert f"http://127.0.0.1:{port} is unreachable (connection refused)" in str(err.value)
