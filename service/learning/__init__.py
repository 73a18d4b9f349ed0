"""Learning: labelled events in, policies and published snapshots out.

- `book`     the Redis-free core: `PolicyBook` applies labelled events to each (title, variant) policy,
             `SnapshotClock` says when to publish; the in-process simulator drives the same classes
- `learner`  the served learner: sweeps expired impressions, reads each title's labelled stream from its
             snapshot's position, drives the book, publishes snapshot + position atomically
- `leases`   title leases: learners started without fixed titles share the catalog evenly and take over
             a dead learner's titles within the lease TTL
- `throttle` the per-viewer cap on learned rewards (`viewer_reward_cap`): what client keys cannot stop
"""
