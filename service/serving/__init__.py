"""Deciding: which artwork a viewer sees, from the in-memory policy snapshots.

- `decider`      `Decider.impression`: find the title and the viewer's variant, score with the variant's
                 cached policy, sample from the full probability vector, log it through the join
                 (one Redis round trip); the title's default artwork, unlogged, when Redis is down
- `model_cache`  a worker's title configs and policy snapshots, refreshed at most every refresh interval
- `experiments`  sticky variant assignment (weighted rendezvous hashing of the viewer id)
"""
