-- activate: show deferred impressions of one title (POST /activate). Atomic per call, so of concurrent
-- activations of one impression exactly one finds it deferred and answers 'activated'.
--
-- KEYS[1]       pending zset             (keys.pending)
-- KEYS[2]       join counters hash       (keys.join_counters)
-- KEYS[3]       title totals hash        (keys.totals)
-- KEYS[4]       segment counters hash    (keys.segment_counters)
-- KEYS[3+2i]    impression hash of ARGV[4+i]          (keys.impression), i = 1..n
-- KEYS[4+2i]    its decision-minute counters          (keys.minute_counters)
-- ARGV[1]       now (epoch seconds, text), or '' to use the Redis server's TIME
-- ARGV[2]       attribution window, seconds (text): an activated impression's deadline is now + window
-- ARGV[3]       TTL of the impression hash from activation, seconds (window + retention)
-- ARGV[4]       TTL of the minute counters, seconds
-- ARGV[4+i]     impression id, i = 1..n
-- Returns one status per id: 'activated' | 'already_active' | 'unknown' | 'expired'.
--
-- A deferred impression (state 'd', see impress.lua) whose activation deadline (decided_at + window,
-- its pending-set score) has passed is 'expired': if the sweep has not counted it yet, this script
-- counts it `never_shown` now (state 'n'), exactly as expire.lua would. Activation turns 'd' into 'p',
-- re-scores the pending set with the new deadline, renews the hash's TTL and counts the impression
-- where impress.lua counts a shown one.

local now = ARGV[1]
if now == '' then
  local t = redis.call('TIME')
  now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local now_n = tonumber(now)
local deadline = now_n + tonumber(ARGV[2])
local deadline_text = string.format('%.17g', deadline)
local n = (#KEYS - 4) / 2
local out = {}
local activated, never_shown = 0, 0
for i = 1, n do
  local id, hkey, mkey = ARGV[4 + i], KEYS[3 + 2 * i], KEYS[4 + 2 * i]
  local h = redis.call('HMGET', hkey, 's', 'd', 'if', 'si')
  local state = h[1]
  if not state then
    out[i] = 'unknown'
  elseif state == 'n' then
    out[i] = 'expired'
  elseif state ~= 'd' then
    out[i] = 'already_active'
  elseif now_n > tonumber(h[2]) then
    redis.call('ZREM', KEYS[1], id)
    redis.call('HSET', hkey, 's', 'n')
    never_shown = never_shown + 1
    out[i] = 'expired'
  else
    redis.call('HSET', hkey, 's', 'p', 'd', deadline_text)
    redis.call('EXPIRE', hkey, ARGV[3])
    redis.call('ZADD', KEYS[1], deadline_text, id)
    if redis.call('HINCRBY', mkey, h[3], 1) == 1 then
      redis.call('EXPIRE', mkey, ARGV[4])
    end
    redis.call('HINCRBY', KEYS[3], h[3], 1)
    if h[4] and h[4] ~= '' then  -- segment counters, beside the totals (see impress.lua)
      redis.call('HINCRBY', KEYS[4], h[4], 1)
    end
    activated = activated + 1
    out[i] = 'activated'
  end
end
if activated > 0 then
  redis.call('HINCRBY', KEYS[2], 'impressions', activated)
  redis.call('HINCRBY', KEYS[2], 'activated', activated)
end
if never_shown > 0 then
  redis.call('HINCRBY', KEYS[2], 'never_shown', never_shown)
end
return out
