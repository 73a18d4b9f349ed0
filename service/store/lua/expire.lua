-- expire: label every given impression that is still pending and past its deadline: reward 1 if it was
-- clicked within its window, else 0. Atomic against clicks: whichever script removes the id from the
-- pending set emits the one labelled event.
--
-- KEYS[1]   pending zset      (keys.pending)
-- KEYS[2]   labelled stream   (keys.labelled_stream)
-- KEYS[3]   join counters     (keys.join_counters)
-- KEYS[3+i] impression hash of ARGV[2+i] (keys.impression), i = 1..n
-- ARGV[1]   now (epoch seconds, text, as returned by due.lua)
-- ARGV[2]   approximate MAXLEN of the labelled stream
-- ARGV[2+i] impression id, i = 1..n
-- Returns the number of labelled events emitted.

-- Per id: one HMGET, one HSET, one XADD; the pending-set lookups (ZMSCORE), removals (ZREM) and counters
-- are one command each for the whole batch, not one per id (each redis.call has a fixed cost).

local now = tonumber(ARGV[1])
local n = #KEYS - 3
if n < 1 then
  return 0
end
local ids = {}
for i = 1, n do
  ids[i] = ARGV[i + 2]
end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local due, seen = {}, {}
local emitted, defaulted, lost = 0, 0, 0
for i = 1, n do
  local id, score = ids[i], scores[i]
  if score and tonumber(score) < now and not seen[id] then  -- an id given twice is labelled once
    seen[id] = true
    due[#due + 1] = id
    local h = redis.call('HMGET', KEYS[i + 3], 'd', 'ev', 's')
    if h[1] then
      local reward = '0'
      if h[3] == 'c' then reward = '1' end
      if reward == '1' then
        redis.call('HSET', KEYS[i + 3], 's', 'C')
      else
        redis.call('HSET', KEYS[i + 3], 's', 'x')
        defaulted = defaulted + 1
      end
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', id, 'r', reward, 'at', h[1], 'ev', h[2])
      emitted = emitted + 1
    else
      -- the impression outlived its retention while pending (no sweep ran for that long)
      lost = lost + 1
    end
  end
end
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
if defaulted > 0 then
  redis.call('HINCRBY', KEYS[3], 'defaulted', defaulted)
end
if emitted > 0 then
  redis.call('HINCRBY', KEYS[3], 'labelled', emitted)
end
if lost > 0 then
  redis.call('HINCRBY', KEYS[3], 'lost', lost)
end
return emitted
