"""The join: how each impression gets exactly one label, and the same rule executed in two places.

- `rule`        the rule in Python (`ClickOutcome`, `MemoryJoin`, `label_batch`); the simulator runs it
- `redis_join`  the rule executed atomically inside Redis by the scripts in `service/store/lua/`
                (`impress`, `click`, the two-phase expiry sweep); the service runs it

A property-based test feeds random interleavings to both and requires identical outcomes.
"""
