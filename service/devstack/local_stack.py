"""`artbandit run`: the whole service on one machine, to try it out.

A private Redis (AOF on, kept in `<data-dir>/redis`, so a restart keeps what was learned) unless
ARTBANDIT_REDIS_URL points elsewhere; the sample catalog; the API under gunicorn and the learner as child
processes; demo traffic from this process. Ctrl-C (or SIGTERM) stops the demo, then the API, the
learner and Redis, in that order: children run in their own sessions so the terminal's Ctrl-C reaches
only this process, which then stops them in order.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.catalog import TitleConfig, load_catalog
from service.config import Settings
from service.devstack.redis_cluster import PrivateCluster
from service.devstack.redis_server import PrivateRedis
from service.gunicorn_conf import gunicorn_command
from service.shutdown import stop_on_signals
from service.store.catalog import seed_configured_catalog
from service.store.clients import redact_url

if TYPE_CHECKING:
    from simulator.demo import DemoTraffic

log = logging.getLogger("artbandit.run")
READY_TIMEOUT = 60.0  # seconds for gunicorn to answer /readyz
STATUS_EVERY = 20.0  # seconds between status lines


def sample_catalog_path() -> str:
    return str(resources.files("service").joinpath("catalog", "sample.yaml"))


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def http_get_json(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, json.loads(body) if body else None
    finally:
        conn.close()


@dataclass
class LocalStack:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    data_dir: str = ".artbandit"
    rate: float = 30.0
    demo: bool = True
    window: float = 10.0
    cluster: bool = False  # a private 3-master + 3-replica Redis Cluster instead of one Redis
    learners: int = 1
    cluster_port: int = 0  # first node's port (the others follow; bus ports +10000); 0: free ports

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LocalStack:
        return cls(
            args.host, args.port, args.workers, args.data_dir, args.rate, not args.no_demo, args.window,
            getattr(args, "cluster", False), getattr(args, "learners", 1), getattr(args, "cluster_port", 0),
        )  # fmt: skip

    @property
    def client_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def base_url(self) -> str:
        return f"http://{self.client_host}:{self.port}"

    def run(self) -> int:
        if port_in_use(self.host, self.port):
            log.error("port %d on %s is in use; pick another with --port", self.port, self.host)
            return 2
        stop = threading.Event()
        stop_on_signals(stop)
        private: PrivateRedis | None = None
        private_cluster: PrivateCluster | None = None
        procs: dict[str, subprocess.Popen[bytes]] = {}
        demo: DemoTraffic | None = None
        env = dict(os.environ)
        try:
            if not env.get("ARTBANDIT_REDIS_URL") and self.cluster:
                # its nodes keep their data in temporary directories: a demo cluster starts afresh
                private_cluster = PrivateCluster(
                    masters=3, replicas=1, appendonly=True, base_port=self.cluster_port, new_session=True
                )
                env["ARTBANDIT_REDIS_URL"] = private_cluster.start().url
            elif not env.get("ARTBANDIT_REDIS_URL"):
                directory = Path(self.data_dir, "redis").resolve()
                directory.mkdir(parents=True, exist_ok=True)
                private = PrivateRedis(appendonly=True, directory=str(directory), new_session=True).start()
                env["ARTBANDIT_REDIS_URL"] = private.url
            generated_key = not env.get("ARTBANDIT_API_KEY")
            env["ARTBANDIT_API_KEY"] = env.get("ARTBANDIT_API_KEY") or secrets.token_urlsafe(24)
            env.setdefault("ARTBANDIT_ATTRIBUTION_WINDOW", f"{self.window:g}")
            env.setdefault("ARTBANDIT_CATALOG", sample_catalog_path())
            settings = Settings.load(environ=env)
            seeded = seed_configured_catalog(settings)
            titles = load_catalog(settings.catalog) if settings.catalog else []
            api = gunicorn_command(self.host, self.port, self.workers)
            procs["API"] = subprocess.Popen(api, env=env, start_new_session=True)
            learn = [sys.executable, "-m", "service.cli", "learn"]
            for i in range(max(1, self.learners)):  # several share the titles by lease
                name = "learner" if i == 0 else f"learner {i + 1}"
                procs[name] = subprocess.Popen(learn, env=env, start_new_session=True)
            if not self._wait_ready(stop, procs):
                return 0 if stop.is_set() else 1
            self._banner(settings, generated_key, seeded, private, private_cluster)
            if self.demo and titles:
                demo = self._start_demo(titles, settings.client_keys[0] if settings.client_keys else None)
            experiment = next((t.title_id for t in titles if t.experiment is not None), None)
            next_status = time.monotonic() + STATUS_EVERY
            while not stop.wait(1.0):
                for name, p in procs.items():
                    if p.poll() is not None:
                        log.error("the %s exited with status %s; stopping", name, p.returncode)
                        return 1
                if time.monotonic() >= next_status:
                    next_status += STATUS_EVERY
                    self._status(demo, experiment)
            return 0
        finally:
            print("\nstopping: demo, API, learner, Redis ...", flush=True)
            if demo is not None:
                demo.stop()
            for p in procs.values():
                _terminate(p)
            if private is not None:
                private.stop(cleanup=False)
            if private_cluster is not None:
                private_cluster.stop()

    def _wait_ready(self, stop: threading.Event, procs: dict[str, subprocess.Popen[bytes]]) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while not stop.is_set() and time.monotonic() < deadline:
            if any(p.poll() is not None for p in procs.values()):
                log.error("the API or the learner exited during start-up; see the messages above")
                return False
            try:
                status, _ = http_get_json(self.client_host, self.port, "/readyz")
                if status == 200:
                    return True
            except OSError:
                pass  # not listening yet
            stop.wait(0.2)
        if not stop.is_set():
            log.error("the API did not become ready within %.0f s", READY_TIMEOUT)
        return False

    def _banner(
        self,
        settings: Settings,
        generated_key: bool,
        seeded: int,
        private: PrivateRedis | None,
        private_cluster: PrivateCluster | None = None,
    ) -> None:
        where = f"private, AOF in {private.directory}" if private is not None else "from ARTBANDIT_REDIS_URL"
        if private_cluster is not None:
            ports = ", ".join(str(n.port) for n in private_cluster.nodes)
            where = f"private Redis Cluster, 3 masters + 3 replicas on ports {ports}; data not kept"
        key_note = "generated for this run" if generated_key else "from ARTBANDIT_API_KEY"
        demo = f"{self.rate:g} impressions/s of synthetic viewers" if self.demo else "off (--no-demo)"
        lines = [
            "",
            "artbandit is running",
            f"  dashboard   {self.base_url}/dashboard",
            f"  API         {self.base_url}   (described at {self.base_url}/openapi.json)",
            f"  metrics     {self.base_url}/metrics",
            f"  stats       {self.base_url}/stats/<title_id>",
            f"  admin key   {settings.api_key}   ({key_note}; send 'Authorization: Bearer <key>')",
            f"  Redis       {redact_url(settings.redis_url)}   ({where})",
            f"  catalog     {settings.catalog}   ({seeded} new title(s) seeded)",
            f"  demo        {demo}",
            f"  attribution window {settings.attribution_window:g} s"
            + (
                "   (short for the demo; production default 1800 s)"
                if settings.attribution_window < 1800
                else ""
            ),
            "Ctrl-C stops everything.",
            "",
        ]
        print("\n".join(lines), flush=True)

    def _start_demo(self, titles: list[TitleConfig], client_key: str | None) -> DemoTraffic:
        from simulator.demo import DemoTraffic, ViewerModel

        model = ViewerModel.from_catalog(titles)
        return DemoTraffic(self.base_url, model, rate=self.rate, client_key=client_key).start()

    def _status(self, demo: DemoTraffic | None, experiment: str | None) -> None:
        parts = []
        table = ""
        if demo is not None:
            c = demo.counters.snapshot()
            ctr = c["clicks"] / c["impressions"] if c["impressions"] else 0.0
            parts.append(f"demo: {c['impressions']} impressions, {c['clicks']} clicks ({ctr:.1%})")
            if c["errors"] or c["fallbacks"]:
                parts.append(f"{c['errors']} errors, {c['fallbacks']} fallbacks")
        if experiment is not None:
            try:
                status, doc = http_get_json(self.client_host, self.port, f"/stats/{experiment}")
            except OSError as exc:
                status, doc = 0, None
                parts.append(f"stats unavailable: {exc}")
            if status == 200 and doc:
                table = _ctr_table(experiment, doc.get("variants", []))
        if parts:
            print(" | ".join(parts), flush=True)
        if table:
            print(table, flush=True)


def _ctr_table(title_id: str, variants: list[dict[str, Any]]) -> str:
    """The CTR table per variant (each a policy) that `make run` prints while the demo runs."""
    header = f"{'variant':<10} {'policy':<15} {'impressions':>11} {'clicks':>7} {'CTR':>7}  95% interval"
    rows = [f"  {title_id}: {header}"]
    for v in variants:
        ci = v.get("ctr_ci")
        ctr = f"{v['ctr']:.1%}" if v.get("ctr") is not None else "–"
        interval = f"{ci[0]:.1%} – {ci[1]:.1%}" if ci else ""
        rows.append(
            f"  {'':<{len(title_id) + 1}} {v['variant']:<10} {v.get('policy') or '':<15} "
            f"{v.get('impressions', 0):>11,} {v.get('clicks', 0):>7,} {ctr:>7}  {interval}"
        )
    return "\n".join(rows)


def _terminate(p: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
