"""Synthetic worlds, the in-process and HTTP drivers, off-policy evaluation and reports.

    world.py / config.py / traffic.py   the synthetic world, its knobs, its impression stream
    inprocess.py                        real policies + the service's join rule and learner core
    http_driver.py                      the same world against a running service over HTTP
    metrics.py / report.py              what a run measures; tables, plots and the markdown summary
    logs.py / ope.py / replay.py        logged decisions (flat, DSJSON); replay, IPS, SNIPS, DR
    synthetic_logs.py / export.py       logs from a world with known truth; logs from the service
    cli.py                              `artbandit simulate | replay | export`

Nothing here imports Flask or Redis at module level except `http_driver` (httpx) and, lazily, `export`.
"""
