"""A Flask app served over real HTTP on a loopback port, in a thread of the test process (werkzeug)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import make_server


@contextmanager
def serve(wsgi_app: Any) -> Iterator[int]:
    """Serve `wsgi_app` on 127.0.0.1 and a free port (threaded) until the block ends; yields the port."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
