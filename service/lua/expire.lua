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

local now = tonumber(ARGV[1])
local emitted = 0
for i = 4, #KEYS do
  local id = ARGV[i - 1]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) < now then
    redis.call('ZREM', KEYS[1], id)
    local h = redis.call('HMGET', KEYS[i], 'd', 'ev', 's')
    if h[1] then
      local reward = '0'
      if h[3] == 'c' then reward = '1' end
      if reward == '1' then
        redis.call('HSET', KEYS[i], 's', 'C')
      else
        redis.call('HSET', KEYS[i], 's', 'x')
        redis.call('HINCRBY', KEYS[3], 'defaulted', 1)
      end
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', id, 'r', reward, 'at', h[1], 'ev', h[2])
      redis.call('HINCRBY', KEYS[3], 'labelled', 1)
      emitted = emitted + 1
    else
      -- the impression outlived its retention while pending (no sweep ran for that long)
      redis.call('HINCRBY', KEYS[3], 'lost', 1)
    end
  end
end
return emitted
