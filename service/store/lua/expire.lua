-- expire: label every given impression that is still pending and past its deadline: its reward aggregate
-- clipped to the title's bounds if it was rewarded within its window (a click: 1), else 0 clipped. Atomic
-- against clicks: whichever script removes the id from the pending set emits the one labelled event.
-- A deferred impression never activated (state 'd', scored with its activation deadline) is removed and
-- counted `never_shown` instead: it emits no label, so it is never learned, exported or evaluated.
--
-- KEYS[1]   pending zset      (keys.pending)
-- KEYS[2]   labelled stream   (keys.labelled_stream)
-- KEYS[3]   join counters     (keys.join_counters)
-- KEYS[3+i] impression hash of ARGV[2+i] (keys.impression), i = 1..n
-- KEYS[4+n] title totals hash (keys.totals): mean-reward counters of titles with a reward config
-- ARGV[1]   now (epoch seconds, text, as returned by due.lua)
-- ARGV[2]   approximate MAXLEN of the labelled stream
-- ARGV[2+i] impression id, i = 1..n
-- Returns the number of labelled events emitted.

-- Per id: one HMGET, one HSET, one XADD; the pending-set lookups (ZMSCORE), removals (ZREM) and counters
-- are one command each for the whole batch, not one per id (each redis.call has a fixed cost).

local now = tonumber(ARGV[1])
local n = #KEYS - 4
if n < 1 then
  return 0
end
local totals = KEYS[4 + n]
local ids = {}
for i = 1, n do
  ids[i] = ARGV[i + 2]
end
local scores = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local due, seen = {}, {}
local emitted, defaulted, lost, never_shown = 0, 0, 0, 0
for i = 1, n do
  local id, score = ids[i], scores[i]
  if score and tonumber(score) < now and not seen[id] then  -- an id given twice is labelled once
    seen[id] = true
    due[#due + 1] = id
    local h = redis.call('HMGET', KEYS[i + 3], 'd', 'ev', 's', 'v', 'ag', 'lo', 'hi', 'cf')
    if h[3] == 'd' then
      redis.call('HSET', KEYS[i + 3], 's', 'n')
      never_shown = never_shown + 1
    elseif h[1] then
      local rewarded = h[3] == 'c'
      local x = 0
      if rewarded then x = tonumber(h[4] or '1') end
      local lo, hi = tonumber(h[6] or '0'), tonumber(h[7] or '1')
      if x < lo then x = lo end
      if x > hi then x = hi end
      local reward = string.format('%.17g', x)
      if rewarded then
        redis.call('HSET', KEYS[i + 3], 's', 'C')
      else
        redis.call('HSET', KEYS[i + 3], 's', 'x')
        defaulted = defaulted + 1
      end
      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'id', id, 'r', reward, 'at', h[1], 'ev', h[2])
      if h[5] then  -- mean reward per artwork, over labelled impressions (keys.reward_sum_field / labels_field)
        local cell = string.sub(h[8], 2)
        redis.call('HINCRBYFLOAT', totals, 'r' .. cell, reward)
        redis.call('HINCRBY', totals, 'n' .. cell, 1)
      end
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
if never_shown > 0 then
  redis.call('HINCRBY', KEYS[3], 'never_shown', never_shown)
end
return emitted
