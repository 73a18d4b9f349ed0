"""Open-loop load at a fixed rate with Poisson arrivals, for latency at part load.

wrk paces a connection with a `delay()` after each response, which keeps its connections in the lockstep
they start in: every pace interval all of them send at once, a burst the server drains one request per
thread at a time, so the p99 measures how long a burst of `connections` requests takes to drain whatever
the load. (wrk with random delays gave p99s of 0.4–1.5 s at a quarter of saturation, where this
generator and a plain Python client measure 10–30 ms; we did not find out why and do not use it.)
Independent viewers arrive as a Poisson process: this generator draws the arrival times up front at
`rate` per second, hands each to the next free keep-alive connection, and measures a request's latency
from its scheduled arrival (so a late send counts against the server, as wrk2 does: no coordinated
omission). The generator itself is Python on the same cores: at a few hundred requests per second it
costs a few percent of a core (its CPU is reported).
"""

from __future__ import annotations

import http.client
import queue
import random
import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class PacedResult:
    requests: int  # answered (or failed) requests
    rps: float  # of the run
    p50: float  # ms, from the scheduled arrival to the last byte of the answer
    p99: float
    errors: int  # not 200, or the connection failed
    client_cpu_us: float  # this generator's CPU per request


def paced(
    url: str, path: str, body: Callable[[random.Random], bytes], rate: float, seconds: float,
    connections: int = 32, seed: int = 0, headers: dict[str, str] | None = None,
) -> PacedResult:  # fmt: skip
    """`rate` requests per second for `seconds`, Poisson arrivals, POST `body(rng)` to `path`."""
    parts = urlsplit(url)
    rng = random.Random(seed)
    arrivals: queue.SimpleQueue[float | None] = queue.SimpleQueue()
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    send_headers = {"Content-Type": "application/json", **(headers or {})}

    def connection(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
        own = random.Random(seed * 1000 + k)
        while (at := arrivals.get()) is not None:
            data = body(own)
            wait = at - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            try:
                conn.request("POST", path, data, send_headers)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            done = time.perf_counter()
            with lock:
                latencies.append(done - at)
                errors[0] += not ok

    cpu_before = _own_cpu()
    threads = [threading.Thread(target=connection, args=(k,), daemon=True) for k in range(connections)]
    for t in threads:
        t.start()
    start = time.perf_counter() + 0.05
    at = start
    while True:
        at += rng.expovariate(rate)
        if at >= start + seconds:
            break
        arrivals.put(at)
    for _ in threads:
        arrivals.put(None)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    n = len(latencies)
    ordered = sorted(latencies)
    return PacedResult(
        requests=n,
        rps=n / elapsed,
        p50=statistics.median(ordered) * 1e3,
        p99=ordered[min(n - 1, int(0.99 * n))] * 1e3,
        errors=errors[0],
        client_cpu_us=(_own_cpu() - cpu_before) / max(n, 1) * 1e6,
    )


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
