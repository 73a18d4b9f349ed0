-- due: the first phase of the expiry sweep (read only): which pending impressions are past their deadline.
-- The second phase (expire.lua) needs their hashes as KEYS, so the caller derives those keys in between.
--
-- KEYS[1] pending zset (keys.pending)
-- ARGV[1] now (epoch seconds, text), or '' to use the Redis server's TIME
-- ARGV[2] at most this many ids
-- Returns {now, id, id, ...}: ids with deadline < now, earliest deadline first.

local now = ARGV[1]
if now == '' then
  local t = redis.call('TIME')
  now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[2]))
table.insert(ids, 1, now)
return ids
