"""The join: how each impression gets exactly one label, and the same rule executed in two places.

- `rule`        the rule, written out in its docstring, and its vocabulary (`ClickOutcome`, `Activation`,
                `Labelled`); `MemoryJoin`, the whole rule in process memory (the in-process simulator and
                the soak test run it), and `label_batch`, the click rule vectorized for the simulator
- `entry`       one impression's entry in `MemoryJoin`: the fields and states of its hash in Redis
- `redis_join`  the rule executed atomically inside Redis by the scripts in `service/store/lua/`
                (`impress`, `activate`, `click` for clicks and rewards, the two-phase expiry sweep); the
                service runs it

A property-based test (tests/service/join/test_join_equivalence.py) feeds random interleavings of
impressions (shown or deferred, with and without reward rules), activations, clicks, rewards and sweeps to
`MemoryJoin` and `RedisJoin` and requires identical outcomes, labels and counters.
"""
