"""gunicorn settings of the artbandit API. `artbandit serve` uses it; so can a plain gunicorn:

    gunicorn -c python:service.gunicorn_conf --bind 0.0.0.0:8000 'service.app:create_app()'

Service settings come from ARTBANDIT_* variables (see docs/configuration.md); WEB_CONCURRENCY and
command-line flags override the worker count and the rest of these defaults.

Process model: the master seeds the catalog (`on_starting`) and never touches Redis again; each worker
builds its own app and opens its own Redis connections (`post_fork` drops anything inherited if the app
was preloaded; `post_worker_init` loads the policies before the first request). Prometheus runs in
multiprocess mode: PROMETHEUS_MULTIPROC_DIR is set here before any worker imports prometheus_client.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_OWNED_DIR_ENV = "ARTBANDIT_OWNS_METRICS_DIR"  # set when this file created the directory (removed on exit)

bind = ["127.0.0.1:8000"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"  # threads keep HTTP keep-alive connections open; sync workers close every one
# 2 threads: a request waits for Redis mid-way, and every wait hands the GIL to another thread; more
# threads add lock traffic without adding throughput (docs/benchmarks.md, "Worker settings").
threads = 2
# Every worker listens on its own SO_REUSEPORT socket and the kernel spreads new connections across
# them; without it one worker's accept loop can win nearly every connection of a keep-alive client.
# Caveat: a second server started on the same port by the same user silently shares it.
reuse_port = True
preload_app = False  # each worker imports and builds its own app (own Redis pool, own random generators)
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = None  # per-request logs cost more than the request; /metrics has the latency histogram
errorlog = "-"
loglevel = os.environ.get("ARTBANDIT_LOG_LEVEL", "info")
proc_name = "artbandit-api"
control_socket_disable = (
    True  # gunicorn >= 24: no runtime control socket in $HOME (ignored by older versions)
)


def on_starting(server: Any) -> None:
    """Master, before any worker: prepare the metrics directory, then seed the catalog once."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        os.makedirs(directory, exist_ok=True)
        for stale in glob.glob(os.path.join(directory, "*.db")):  # values of a previous run
            os.remove(stale)
    else:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="artbandit-metrics-")
        os.environ[_OWNED_DIR_ENV] = "1"
    # imported only now: prometheus_client picks multiprocess mode when first imported
    from service.config import Settings
    from service.store.catalog import seed_configured_catalog

    settings = Settings.load()
    seeded = seed_configured_catalog(settings)
    if settings.catalog:
        server.log.info("catalog %s: %d new title(s) written", settings.catalog, seeded)


def post_fork(server: Any, worker: Any) -> None:
    """Worker, right after fork: with a preloaded app, forget the master's connections and generators."""
    if server.cfg.preload_app:
        worker.app.wsgi().extensions["artbandit"].after_fork()


def post_worker_init(worker: Any) -> None:
    """Worker, app loaded: connect and load the policies now rather than during the first requests."""
    worker.wsgi.extensions["artbandit"].warm_up()


def child_exit(server: Any, worker: Any) -> None:
    """Master: a worker is gone; drop its live gauges from the metrics directory."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if os.environ.get(_OWNED_DIR_ENV) == "1":
        shutil.rmtree(os.environ.get(MULTIPROC_ENV, ""), ignore_errors=True)


def gunicorn_command(host: str, port: int, workers: int) -> list[str]:
    """argv that runs the API under gunicorn with these settings (`artbandit serve` and `run`)."""
    return [
        sys.executable, "-m", "gunicorn",
        "--config", "python:service.gunicorn_conf",
        "--bind", f"{host}:{port}",
        "--workers", str(workers),
        "service.app:create_app()",
    ]  # fmt: skip
