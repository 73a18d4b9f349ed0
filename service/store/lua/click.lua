-- click: the join's click path (service/join.py states the rule). Atomic, so of concurrent clicks on one
-- impression exactly one finds it unclicked and is 'recorded'.
--
-- KEYS[1] impression hash          (keys.impression)
-- KEYS[2] pending zset             (keys.pending)
-- KEYS[3] labelled stream          (keys.labelled_stream)
-- KEYS[4] join counters hash       (keys.join_counters)
-- KEYS[5] decision-minute counters (keys.minute_counters, minute taken from the impression id)
-- KEYS[6] title totals hash        (keys.totals)
-- KEYS[7] clicks stream            (keys.clicks_stream: the accepted clicks, for early updates)
-- ARGV[1] impression id
-- ARGV[2] click time (epoch seconds, text), or '' to use the Redis server's TIME
-- ARGV[3] approximate MAXLEN of the labelled and clicks streams
-- Returns 'recorded' | 'duplicate' | 'late' | 'unknown' | 'untracked' (unknown, and the title has no
-- join counters, so the caller counts it globally instead of creating keys for a made-up title).

local now = ARGV[2]
if now == '' then
  local t = redis.call('TIME')
  now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

local h = redis.call('HMGET', KEYS[1], 'd', 'ev', 'cf', 's')
local deadline, ev, click_field, state = h[1], h[2], h[3], h[4]
if not deadline then
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('HINCRBY', KEYS[4], 'unknown', 1)
    return 'unknown'
  end
  return 'untracked'
end

-- Impression states: 'p' pending, 'c' pending and clicked, 'C' labelled clicked, 'x' labelled defaulted.
-- Labels are emitted at the deadline only (see service/join.py for why), by expire.lua or, for an overdue
-- impression the sweep has not reached yet, right here before the click is judged.
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  if tonumber(now) <= tonumber(deadline) then
    if state == 'c' then
      redis.call('HINCRBY', KEYS[4], 'duplicate', 1)
      return 'duplicate'
    end
    redis.call('HSET', KEYS[1], 's', 'c')
    redis.call('HINCRBY', KEYS[4], 'clicked', 1)
    if redis.call('EXISTS', KEYS[5]) == 1 then
      redis.call('HINCRBY', KEYS[5], click_field, 1)
    end
    redis.call('HINCRBY', KEYS[6], click_field, 1)
    -- The click that will make the label 1 at the deadline, for learners with early updates.
    redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[1], 'at', now, 'ev', ev)
    return 'recorded'
  end
  -- Past the deadline but not swept yet: the expiry happens first, then the click is judged.
  redis.call('ZREM', KEYS[2], ARGV[1])
  local reward = '0'
  if state == 'c' then reward = '1' end
  if reward == '1' then
    redis.call('HSET', KEYS[1], 's', 'C')
  else
    redis.call('HSET', KEYS[1], 's', 'x')
    redis.call('HINCRBY', KEYS[4], 'defaulted', 1)
  end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[1], 'r', reward, 'at', deadline, 'ev', ev)
  redis.call('HINCRBY', KEYS[4], 'labelled', 1)
  if reward == '1' then
    redis.call('HINCRBY', KEYS[4], 'duplicate', 1)
    return 'duplicate'
  end
  redis.call('HINCRBY', KEYS[4], 'late', 1)
  return 'late'
end

if state == 'C' or state == 'c' then
  redis.call('HINCRBY', KEYS[4], 'duplicate', 1)
  return 'duplicate'
end
redis.call('HINCRBY', KEYS[4], 'late', 1)
return 'late'
