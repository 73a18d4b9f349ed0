"""Reporting: from counters and logs to numbers a person reads.

- `stats`      statistics (Wilson, lift, SRM) and the stats document behind `/stats` and the dashboard
- `ope`        off-policy estimators (replay, IPS, SNIPS, DR) and `LoggedData`, their input; the
               simulator's offline tools use the same ones
- `offpolicy`  the dashboard's off-policy panel: each variant's policy evaluated on the explore logs
- `dashboard`  the dashboard's view-model and its server-rendered SVG charts
"""
