-- rollcall: a learner says it is alive until now + TTL (the server's clock), forgets learners whose
-- time ran out, and learns how many are alive (itself included) and its rank among them by id.
--
-- KEYS[1] the learners' zset (keys.learners): member learner id, score deadline in ms
-- ARGV[1] the learner's id
-- ARGV[2] TTL in milliseconds ('0': leaving, remove this learner)
-- Returns {learners alive, this learner's 0-based rank by id (-1 when leaving)}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if tonumber(ARGV[2]) <= 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return {redis.call('ZCARD', KEYS[1]), -1}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local rank = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id < ARGV[1] then
    rank = rank + 1
  end
end
return {redis.call('ZCARD', KEYS[1]), rank}
