"""The whole service on a private Redis Cluster (3 masters + 3 replicas, AOF on), for failover faults:
`artbandit serve` and any number of `artbandit learn` processes (sharing titles by lease), each of which
can be killed, and masters that can be killed with SIGKILL while their replicas take over.

    with ClusterServiceStack(tmp_path, StackSettings(), learners=2) as stack:
        stack.put_title("t1", TITLE)
        port = stack.kill_master_of("t1")      # the replica is promoted after the node timeout
        stack.kill_learner(0)                  # another learner takes its titles over by lease
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis as redis_lib

from service.devstack.redis_cluster import PrivateCluster
from service.store import keys
from service.store.clients import Client, connect
from tests.faults.stack import ServiceStack, StackSettings

NODE_TIMEOUT_MS = 2000  # cluster-node-timeout: a dead master is failed over a little after this


class ClusterServiceStack(ServiceStack):
    def __init__(
        self, workdir: Path, settings: StackSettings | None = None, learners: int = 2, lease_ttl: float = 6.0
    ) -> None:
        super().__init__(workdir, settings)
        self.cluster = PrivateCluster(masters=3, replicas=1, node_timeout_ms=NODE_TIMEOUT_MS, appendonly=True)
        self.n_learners = learners
        self.lease_ttl = lease_ttl
        self.learners: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        env = super().env()
        env["ARTBANDIT_REDIS_URL"] = self.cluster.url
        return env

    def _start_store(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster.start()

    def _start_learners(self) -> None:
        for _ in range(self.n_learners):
            self.start_learner()

    def stop(self) -> None:
        for proc in [self.api, *self.learners]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.cluster.stop()

    def client(self) -> Client:  # type: ignore[override]
        """A patient client of the cluster (for reconciliation); close it after use."""
        return connect(self.cluster.url)

    # ----------------------------------------------------------------- learners
    def start_learner(self) -> None:
        argv = [sys.executable, "-m", "service.cli", "learn", "--lease-ttl", f"{self.lease_ttl:g}"]
        self.learners.append(self._spawn(argv, f"learner-{len(self.learners)}.log"))
        self.learner_starts += 1

    def kill_learner_at(self, i: int) -> int:
        """kill -9 learner `i`; returns its pid."""
        proc = self.learners[i]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        return proc.pid

    def lease_owners(self, titles: list[str]) -> dict[str, str | None]:
        r = self.client()
        try:
            raw = [r.get(keys.lease(t)) for t in titles]
        finally:
            r.close()
        return {t: None if v is None else v.decode() for t, v in zip(titles, raw, strict=True)}

    # ----------------------------------------------------------------- masters
    def master_port_of(self, title_id: str) -> int:
        return self.cluster.master_of(keys.snapshot(title_id)).port

    def kill_master_of(self, title_id: str) -> int:
        """SIGKILL the master holding `title_id`'s slot; returns its port."""
        node = self.cluster.master_of(keys.snapshot(title_id))
        self.cluster.kill(node)
        return node.port

    def wait_promoted(self, title_id: str, dead_port: int, timeout: float = 30.0) -> float:
        """Seconds until a live node serves `title_id`'s slot as master (the replica was promoted)."""
        started = time.monotonic()
        while True:
            try:
                if self.master_port_of(title_id) != dead_port:
                    return time.monotonic() - started
            except (redis_lib.RedisError, StopIteration):
                pass
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"no replica of port {dead_port} was promoted within {timeout:g} s")
            time.sleep(0.05)
