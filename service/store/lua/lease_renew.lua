-- lease_renew: extend a title lease if this learner still holds it (a check-and-set).
--
-- KEYS[1] the title's lease (keys.lease)
-- ARGV[1] the learner's id
-- ARGV[2] lease TTL in milliseconds
-- Returns 1 when renewed, 0 when the lease is gone or held by another learner.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
