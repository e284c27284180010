"""Run a test's own ``http.server`` on a free loopback port for the duration of a block."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer


class LoopbackHTTPServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` with a listen backlog for many clients at once.

    socketserver's backlog of 5 overflows when a batch's prefetchers (4 downloads per lane) or a redirect loop open
    more connections at once: the kernel drops an attempt and the client tries again 0.7-1 s later (2 of 5 benchmark
    batches of 32 photos took twice as long).
    """

    request_queue_size = 128


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Serve ``server`` (bound to a loopback address, port 0) in a thread; yields its base URL, shuts it down
    afterwards."""
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{server.server_address[0]}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
