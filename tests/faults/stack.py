"""The whole service as separate processes, for fault injection: a private Redis with AOF on, `artbandit
serve` (gunicorn, N workers) and `artbandit learn`, each of which can be killed and brought back.

    with ServiceStack(tmp_path, StackSettings(appendfsync="everysec")) as stack:
        stack.put_title("t1", TITLE)
        stack.kill_worker()          # kill -9 one gunicorn worker (the master starts another)
        stack.kill_learner(); stack.start_learner()
        stack.stop_redis(); stack.start_redis()      # clean stop: AOF flushed; same port and directory

Output of the API and the learner goes to log files in the work directory (`stack.logs()`), never to a
pipe that nobody reads.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import redis as redis_lib

from service.devstack.redis_server import PrivateRedis, free_port

READY_TIMEOUT = 60.0  # seconds: gunicorn workers import numpy, VW, Flask; a busy machine is slow


@dataclass(frozen=True)
class StackSettings:
    workers: int = 2
    appendfsync: str = "everysec"
    attribution_window: float = 2.0
    snapshot_interval: float = 0.2
    api_key: str = field(default_factory=lambda: "fault-" + secrets.token_hex(12))
    extra_env: tuple[tuple[str, str], ...] = ()  # more ARTBANDIT_* settings, e.g. retention

    def __post_init__(self) -> None:
        if self.appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, got {self.appendfsync!r}")
        if not 1 <= self.workers <= 16:
            raise ValueError(f"workers must be in [1, 16], got {self.workers!r}")


def child_pids(parent: int) -> list[int]:
    """Live processes whose parent is `parent` (from /proc)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue  # exited meanwhile
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[1]) == parent and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"process {pid} has no VmRSS (a zombie?)")


def http_json(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
              timeout: float = 10.0) -> tuple[int, Any]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body)
        conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw) if raw else None
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


class ServiceStack:
    def __init__(self, workdir: Path, settings: StackSettings | None = None) -> None:
        self.workdir = Path(workdir)
        self.settings = settings or StackSettings()
        self.redis = PrivateRedis(
            appendonly=True, appendfsync=self.settings.appendfsync, directory=str(self.workdir / "redis")
        )
        self.port = 0
        self.api: subprocess.Popen[bytes] | None = None
        self.learner: subprocess.Popen[bytes] | None = None
        self.learner_starts = 0

    # ----------------------------------------------------------------- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTBANDIT_", "PROMETHEUS_"))}
        env.update(
            ARTBANDIT_REDIS_URL=self.redis.url,
            ARTBANDIT_API_KEY=s.api_key,
            ARTBANDIT_ATTRIBUTION_WINDOW=f"{s.attribution_window:g}",
            ARTBANDIT_SNAPSHOT_INTERVAL=f"{s.snapshot_interval:g}",
            PROMETHEUS_MULTIPROC_DIR=str(self.workdir / "metrics"),
            PYTHONUNBUFFERED="1",
        )
        env.update(dict(s.extra_env))
        return env

    def start(self) -> Self:
        """Redis, then the API and the learner(s); waits until the API is ready. On failure everything
        started so far is stopped again."""
        try:
            self._start_store()
            self.port = free_port()
            argv = [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port),
                    "--workers", str(self.settings.workers)]  # fmt: skip
            self.api = self._spawn(argv, "api.log")
            self._start_learners()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_store(self) -> None:
        (self.workdir / "redis").mkdir(parents=True, exist_ok=True)
        self.redis.start()

    def _start_learners(self) -> None:
        self.start_learner()

    def stop(self) -> None:
        """SIGTERM the API and the learner (SIGKILL after 20 s), then stop Redis. Idempotent."""
        for proc in (self.api, self.learner):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.redis.stop(cleanup=False)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / log_name, "ab") as log:
            return subprocess.Popen(argv, env=self.env(), stdout=log, stderr=subprocess.STDOUT)

    def logs(self) -> str:
        return "".join(
            f"----- {p.name}\n{p.read_text(errors='replace')}" for p in sorted(self.workdir.glob("*.log"))
        )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until /readyz answers 200 (Redis reachable from a worker)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.api is not None
            if self.api.poll() is not None:
                raise RuntimeError(f"the API exited with {self.api.returncode}:\n{self.logs()}")
            try:
                if http_json(self.port, "GET", "/readyz", timeout=2.0)[0] == 200:
                    return
            except OSError:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API was not ready within {timeout:g} s:\n{self.logs()}")
            time.sleep(0.1)

    # ----------------------------------------------------------------- admin and store
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key}"}

    def put_title(self, title_id: str, body: dict[str, Any]) -> None:
        status, answer = http_json(self.port, "PUT", f"/titles/{title_id}", body, self.admin_headers())
        if status != 200:
            raise RuntimeError(f"PUT /titles/{title_id} answered {status}: {answer}")

    def client(self) -> redis_lib.Redis:
        """A patient client of the stack's Redis (for reconciliation); close it after use."""
        return redis_lib.Redis.from_url(self.redis.url, socket_timeout=10)

    # ----------------------------------------------------------------- faults: API workers
    def worker_pids(self) -> list[int]:
        assert self.api is not None
        return child_pids(self.api.pid)

    def kill_worker(self) -> int:
        """kill -9 one gunicorn worker; returns its pid."""
        pids = self.worker_pids()
        if not pids:
            raise RuntimeError("no gunicorn worker to kill")
        os.kill(pids[0], signal.SIGKILL)
        return pids[0]

    def wait_workers(self, gone: int, timeout: float = READY_TIMEOUT) -> list[int]:
        """Until `gone` is no longer a worker and the full count of workers runs again."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.worker_pids()
            if gone not in pids and len(pids) == self.settings.workers:
                return pids
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not replace worker {gone}: {pids}\n{self.logs()}")
            time.sleep(0.05)

    # ----------------------------------------------------------------- faults: the learner
    def start_learner(self) -> None:
        self.learner = self._spawn([sys.executable, "-m", "service.cli", "learn"], "learner.log")
        self.learner_starts += 1

    def kill_learner(self) -> None:
        assert self.learner is not None
        if self.learner.poll() is not None:
            raise RuntimeError(f"the learner had already exited with {self.learner.returncode}")
        self.learner.send_signal(signal.SIGKILL)
        self.learner.wait()

    # ----------------------------------------------------------------- faults: Redis
    def stop_redis(self) -> None:
        """Clean stop (SIGTERM: Redis flushes and fsyncs the AOF); the data directory stays."""
        self.redis.stop(cleanup=False)

    def kill_redis(self) -> None:
        """kill -9 the redis-server: whatever it had not written to the AOF file is gone."""
        proc = self.redis.process
        assert proc is not None
        proc.kill()
        proc.wait()
        self.redis.stop(cleanup=False)  # closes its stderr pipe, forgets the process

    def start_redis(self) -> None:
        """Restart on the same port and directory: Redis reloads the AOF before it answers."""
        self.redis.start(timeout=30.0)
