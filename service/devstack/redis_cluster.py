"""Start a private Redis Cluster (masters + replicas on 127.0.0.1) for tests, benchmarks and
`artbandit run --cluster`: never the machine's shared Redis.

Each node is a `PrivateRedis` with `--cluster-enabled yes` on a free port whose cluster bus port
(port + 10000) is free too; `redis-cli --cluster create` assigns the slots and the replicas. The node
timeout is short (`node_timeout_ms`) so a killed master's replica is promoted within a few seconds.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field

import redis

from service.devstack.redis_server import PrivateRedis, RedisBinaryNotFound

BUS_OFFSET = 10000  # Redis Cluster's bus port is the client port + 10000


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_pair() -> int:
    """A free port whose bus port (+10000) is free as well."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + BUS_OFFSET <= 65535 and _port_free(port + BUS_OFFSET):
            return port
    raise RuntimeError("found no free port whose cluster bus port (+10000) is free too")


def find_redis_cli() -> str:
    found = shutil.which("redis-cli")
    if found is None:
        raise RedisBinaryNotFound(
            "no redis-cli found: a local cluster needs it (apt-get install redis-tools)"
        )
    return found


@dataclass
class PrivateCluster:
    """`masters` masters with `replicas` replicas each. `url` names one node: clients discover the rest."""

    masters: int = 3
    replicas: int = 1
    node_timeout_ms: int = 2000
    appendonly: bool = False
    base_port: int = 0  # 0: free ports; else base_port, base_port + 1, ... (their +10000 must be free)
    new_session: bool = False
    nodes: list[PrivateRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self, timeout: float = 30.0) -> PrivateCluster:
        cli = find_redis_cli()
        count = self.masters * (1 + self.replicas)
        try:
            for i in range(count):
                port = self.base_port + i if self.base_port else free_port_pair()
                node = PrivateRedis(
                    port=port,
                    appendonly=self.appendonly,
                    new_session=self.new_session,
                    extra_args=[
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", f"nodes-{port}.conf",
                        "--cluster-node-timeout", str(self.node_timeout_ms),
                        "--cluster-require-full-coverage", "no",
                    ],
                )  # fmt: skip
                self.nodes.append(node.start())
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            done = subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas),
                 "--cluster-yes"],
                capture_output=True, text=True, timeout=timeout, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
            self.wait_ok(timeout)
            self.wait_replicas_synced(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node reports `cluster_state:ok` and knows every slot's master."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._node_ok(n) for n in self.nodes if n.process is not None):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ok within {timeout}s")
            time.sleep(0.1)

    def wait_replicas_synced(self, timeout: float = 30.0) -> None:
        """Until every replica has finished its first sync with its master (`master_link_status:up`). A
        replica that never synced is never promoted (its data age is unbounded), so a master killed
        before this would stay dead: failover tests and `artbandit run --cluster` wait for it."""
        want = self.masters * self.replicas
        deadline = time.monotonic() + timeout
        while True:
            if sum(self._synced_replica(n) for n in self.nodes if n.process is not None) >= want:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas not in sync with their masters within {timeout}s")
            time.sleep(0.1)

    @staticmethod
    def _synced_replica(node: PrivateRedis) -> bool:
        client = redis.Redis(port=node.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            info = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        return info.get("role") == "slave" and info.get("master_link_status") == "up"

    @staticmethod
    def _node_ok(node: PrivateRedis) -> bool:
        client = redis.Redis(port=node.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            info = client.cluster("info")
            slots = client.cluster("slots")
        except redis.RedisError:
            return False
        finally:
            client.close()
        covered = sum(int(s[1]) - int(s[0]) + 1 for s in slots) if isinstance(slots, list) else 0
        state = info.get("cluster_state") if isinstance(info, dict) else None
        return state == "ok" and covered == 16384

    def master_of(self, key: str) -> PrivateRedis:
        """The node currently serving `key`'s slot as master."""
        client = redis.Redis(port=next(n.port for n in self.nodes if n.process is not None))
        try:
            slot = int(client.cluster("keyslot", key))
            for start, end, master, *_ in client.cluster("slots"):
                if int(start) <= slot <= int(end):
                    port = int(master[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise RuntimeError(f"no master serves {key!r}")

    def kill(self, node: PrivateRedis) -> None:
        """SIGKILL one node (as a crash would), keeping its data directory."""
        if node.process is not None:
            node.process.kill()
            node.process.wait()
            node.stop(cleanup=False)

    def stop(self) -> None:
        for node in self.nodes:  # signal every node first: they stop in parallel
            if node.process is not None and node.process.poll() is None:
                node.process.terminate()
        for node in self.nodes:
            node.stop()
        self.nodes = []

    def __enter__(self) -> PrivateCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
