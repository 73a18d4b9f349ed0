"""The `artbandit` command.

    artbandit run      everything on one machine: private Redis, API (gunicorn), learner, demo traffic
    artbandit serve    the HTTP API under gunicorn (production entry point)
    artbandit learn    the learner: labelled events -> policies -> published snapshots, until SIGTERM
    artbandit simulate|replay|tune|export ...   offline tools (registered by simulator/cli.py when present)

Service settings come from ARTBANDIT_* environment variables (docs/configuration.md).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from service.shutdown import stop_on_signals

log = logging.getLogger("artbandit")
OWN_COMMANDS = ("run", "serve", "learn")


def cmd_serve(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn (signals then go straight to its master)."""
    from service.gunicorn_conf import gunicorn_command

    argv = gunicorn_command(args.host, args.port, args.workers)
    os.execv(argv[0], argv)
    return 0  # pragma: no cover - execv does not return


def cmd_learn(args: argparse.Namespace) -> int:
    from service.config import Settings
    from service.learning.learner import Learner
    from service.learning.leases import Leases
    from service.store.catalog import seed_configured_catalog
    from service.store.clients import make_redis, redact_url

    settings = Settings.load()
    seed_configured_catalog(settings)
    stop = threading.Event()
    stop_on_signals(stop)
    r = make_redis(settings, for_api=False)
    log.info("learner started on %s", redact_url(settings.redis_url))
    # fixed titles with --title; else the titles are shared with the other learners by lease
    leases = None if args.titles else Leases(r, ttl=args.lease_ttl)
    learner = Learner(r, settings, titles=args.titles, leases=leases)
    try:
        learner.run(stop)
    finally:
        r.close()
    log.info("learner stopped: %d events applied, %d snapshots published", learner.applied, learner.published)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from service.devstack.local_stack import LocalStack

    return LocalStack.from_args(args).run()



def build_parser(with_simulator: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="artbandit",
        description="Personalized artwork selection: a self-hostable contextual-bandit service.",
        epilog="Settings come from ARTBANDIT_* environment variables; see docs/configuration.md.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run everything locally: Redis, API, learner and demo traffic (what `make run` does)",
        description="Start a private Redis (AOF on, data in --data-dir) unless ARTBANDIT_REDIS_URL is set, "
        "seed the sample catalog, and run the API under gunicorn, the learner and a demo traffic generator "
        "until Ctrl-C.",
    )
    run.add_argument("--host", default="127.0.0.1", help="address the API listens on (default: %(default)s)")
    run.add_argument("--port", type=int, default=8000, help="API port (default: %(default)s)")
    run.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: %(default)s)")
    run.add_argument(
        "--data-dir",
        default=".artbandit",
        help="where the private Redis keeps its AOF (default: %(default)s)",
    )
    run.add_argument(
        "--rate", type=float, default=30.0, help="demo impressions per second (default: %(default)s)"
    )
    run.add_argument("--no-demo", action="store_true", help="do not generate demo traffic")
    run.add_argument(
        "--cluster", action="store_true",
        help="run on a private local Redis Cluster (3 masters + 3 replicas, started afresh) instead of one "
        "Redis, unless ARTBANDIT_REDIS_URL is set",
    )  # fmt: skip
    run.add_argument(
        "--cluster-port", type=int, default=0, metavar="PORT",
        help="with --cluster: the first node's port, the other five follow (their bus ports are +10000); "
        "default: free ports",
    )  # fmt: skip
    run.add_argument(
        "--learners", type=int, default=1,
        help="learner processes; several share the titles by lease (default: %(default)s)",
    )  # fmt: skip
    run.add_argument(
        "--window", type=float, default=10.0,
        help="attribution window in seconds, unless ARTBANDIT_ATTRIBUTION_WINDOW is set (default: "
        "%(default)s, short so the demo's non-clicks are labelled quickly; production default: 1800)",
    )  # fmt: skip
    run.set_defaults(func=cmd_run)

    serve = sub.add_parser(
        "serve",
        help="serve the HTTP API under gunicorn",
        description="Run the API under gunicorn with service/gunicorn_conf.py (the process becomes "
        "gunicorn's master; SIGTERM stops it gracefully). Settings come from ARTBANDIT_* variables.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="listen address (default: %(default)s; 0.0.0.0 for all)"
    )
    serve.add_argument("--port", type=int, default=8000, help="listen port (default: %(default)s)")
    serve.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2")),
        help="worker processes (default: WEB_CONCURRENCY or 2)",
    )  # fmt: skip
    serve.set_defaults(func=cmd_serve)

    learn = sub.add_parser(
        "learn",
        help="run the learner until SIGTERM/SIGINT",
        description="Read labelled events, update each (title, variant) policy, publish snapshots.",
    )
    learn.add_argument(
        "--title", action="append", dest="titles", metavar="TITLE_ID",
        help="own only this title (repeatable); default: share the catalog's titles with the other "
        "learners by lease",
    )  # fmt: skip
    learn.add_argument(
        "--lease-ttl", type=float, default=6.0, metavar="SECONDS",
        help="title lease TTL: a dead learner's titles are taken over within it plus half a second "
        "(default: %(default)s)",
    )  # fmt: skip
    learn.set_defaults(func=cmd_learn)

    if with_simulator:
        _add_simulator_commands(sub)
    return parser


def _add_simulator_commands(sub: Any) -> None:
    """simulate/replay/tune/export come from simulator/cli.py; a checkout without it still serves."""
    try:
        simulator_cli = importlib.import_module("simulator.cli")
    except ModuleNotFoundError as exc:
        if exc.name not in ("simulator", "simulator.cli"):
            raise
        return
    simulator_cli.add_subcommands(sub)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # the service's own commands never import the simulator, so a problem there cannot stop the API
    ours = bool(args_list) and args_list[0] in OWN_COMMANDS
    parser = build_parser(with_simulator=not ours)
    args = parser.parse_args(args_list)
    func: Callable[[argparse.Namespace], int | None] = args.func
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
