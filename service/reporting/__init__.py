"""Reporting: from counters and logs to numbers a person reads.

- `stats`      statistics (Wilson, lift, SRM) and the stats document behind `/stats` and the dashboard
- `sequential` always-valid (mSPRT) p-values and lift intervals: the dashboard's flags and badge
- `intervals`  the bounded, effective-count intervals the off-policy estimators use at rare clicks
- `ope`        off-policy estimators (replay, IPS, SNIPS, DR) and `LoggedData`, their input; the
               simulator's offline tools use the same ones
- `evaluate`   a candidate policy evaluated on logs with progressive validation (`artbandit replay`)
- `tuning`     a grid of settings evaluated that way, recommended only behind a gate (`artbandit tune`)
- `offpolicy`  the dashboard's off-policy panel: each variant's policy evaluated on the explore logs, and
               the best setting found there (`tuning`)
- `dashboard`  the dashboard's view-model and its server-rendered SVG charts
"""
