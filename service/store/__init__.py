"""The store: everything that spells a Redis key, packs a command or parses what Redis holds.

- `keys`      every Redis key name (the only place one is spelled), impression ids
- `clients`   Redis clients for API workers and for patient processes (a `RedisCluster` when the URL
              names a cluster node), `UNAVAILABLE`, the circuit breaker, script registration (`lua/`)
- `scripts`   the request path's script calls, packed by hiredis and pipelined across a worker's threads
- `cluster_scripts`  the same on a Redis Cluster: one runner per master, MOVED/ASK followed, a page of
              calls sent to the nodes in parallel
- `records`   stream formats (decision records, labelled events) and the one stream pager
- `catalog`   the title configs in Redis and the catalog version; seeding from YAML
- `counters`  reading the counters the scripts write (totals, per-minute, join outcomes, learner health)
- `lua/`      the scripts; each names its KEYS[] and ARGV[] slots and gets every key from Python
"""
