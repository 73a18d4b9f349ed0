-- lease_release: give up a title lease if this learner holds it (a check-and-delete).
--
-- KEYS[1] the title's lease (keys.lease)
-- ARGV[1] the learner's id
-- Returns 1 when released, 0 when it was not this learner's.

if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
