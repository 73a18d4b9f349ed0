-- click: the join's reward path — clicks (POST /click) and graded rewards (POST /reward); the rule is
-- written in service/join/rule.py. Atomic, so of concurrent clicks on one impression exactly one finds it
-- unrewarded and is 'recorded'.
--
-- KEYS[1] impression hash          (keys.impression)
-- KEYS[2] pending zset             (keys.pending)
-- KEYS[3] labelled stream          (keys.labelled_stream)
-- KEYS[4] join counters hash       (keys.join_counters)
-- KEYS[5] decision-minute counters (keys.minute_counters, minute taken from the impression id)
-- KEYS[6] title totals hash        (keys.totals)
-- KEYS[7] segment counters hash     (keys.segment_counters)
-- KEYS[8] clicks stream            (keys.clicks_stream: the accepted clicks, for early updates)
-- ARGV[1] impression id
-- ARGV[2] click time (epoch seconds, text), or '' to use the Redis server's TIME
-- ARGV[3] approximate MAXLEN of the labelled and clicks streams
-- ARGV[4] reward value (finite number, text), or '' for a click (value 1, event id 'click')
-- ARGV[5] event id of the reward ('' none): a repeated event id is a 'duplicate'
-- ARGV[6] attribution window, seconds (text): activating a deferred impression sets now + window
-- ARGV[7] TTL of the impression hash from activation, seconds
-- ARGV[8] TTL of the minute counters, seconds
-- Returns 'recorded' | 'duplicate' | 'late' | 'unknown' | 'untracked' (unknown, and the title has no
-- join counters, so the caller counts it globally instead of creating keys for a made-up title).
--
-- Impression states: 'd' deferred (not shown yet), 'n' deferred and never shown, 'p' pending, 'c' pending
-- and rewarded, 'C' labelled rewarded, 'x' labelled unrewarded. Labels are emitted at the deadline only
-- (see service/join/rule.py for why), by expire.lua or, for an overdue impression the sweep has not reached
-- yet, right here before the reward is judged. The label is the reward aggregate `v` (a click: 1) clipped
-- to [lo, hi], or 0 clipped for an unrewarded impression.
--
-- Reward rules (fields ag/lo/hi of the impression; absent = a title without a `reward` config: clicks,
-- aggregate 'first' over [0, 1]):
--   first    the first reward within the window is 'recorded', any later one 'duplicate';
--   sum/max  every reward within the window is 'recorded' and folded into v, except a repeated event id
--            ('duplicate'; a click has the event id 'click', so repeated clicks count once).
-- A reward on a deferred impression activates it first (it was evidently shown), if its activation
-- window is still open; otherwise it is 'late' and the impression is counted never_shown.

local now = ARGV[2]
if now == '' then
  local t = redis.call('TIME')
  now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local now_n = tonumber(now)
local value = ARGV[4]
local event = ARGV[5]
if value == '' then
  value, event = '1', 'click'
end

local h = redis.call('HMGET', KEYS[1], 'd', 'ev', 'cf', 's', 'ag', 'lo', 'hi', 'v', 'if', 'sf', 'si')
local deadline, ev, click_field, state, ag, v = h[1], h[2], h[3], h[4], h[5] or 'first', h[8]
local lo, hi = tonumber(h[6] or '0'), tonumber(h[7] or '1')
local segment_field, segment_impressions = h[10], h[11]
if not deadline then
  if redis.call('EXISTS', KEYS[4]) == 1 then
    redis.call('HINCRBY', KEYS[4], 'unknown', 1)
    return 'unknown'
  end
  return 'untracked'
end

-- A deferred impression: activate it (as activate.lua does), or count it never shown and judge late.
if state == 'd' then
  if now_n > tonumber(deadline) then
    redis.call('ZREM', KEYS[2], ARGV[1])
    redis.call('HSET', KEYS[1], 's', 'n')
    redis.call('HINCRBY', KEYS[4], 'never_shown', 1)
    redis.call('HINCRBY', KEYS[4], 'late', 1)
    return 'late'
  end
  deadline = string.format('%.17g', now_n + tonumber(ARGV[6]))
  state = 'p'
  redis.call('HSET', KEYS[1], 's', 'p', 'd', deadline)
  redis.call('EXPIRE', KEYS[1], ARGV[7])
  redis.call('ZADD', KEYS[2], deadline, ARGV[1])
  if redis.call('HINCRBY', KEYS[5], h[9], 1) == 1 then
    redis.call('EXPIRE', KEYS[5], ARGV[8])
  end
  redis.call('HINCRBY', KEYS[6], h[9], 1)
  redis.call('HINCRBY', KEYS[4], 'impressions', 1)
  redis.call('HINCRBY', KEYS[4], 'activated', 1)
  -- segment counters: the activated impression, beside the totals' count of it (see impress.lua)
  if segment_impressions and segment_impressions ~= '' then
    redis.call('HINCRBY', KEYS[7], segment_impressions, 1)
  end
elseif state == 'n' then
  redis.call('HINCRBY', KEYS[4], 'late', 1)
  return 'late'
end

-- The label of a rewarded (or not) impression: the aggregate clipped to [lo, hi].
local function label(rewarded)
  local x = 0
  if rewarded then x = tonumber(v or '1') end
  if x < lo then x = lo end
  if x > hi then x = hi end
  return string.format('%.17g', x)
end

-- a repeated event id is a duplicate (checked for sum/max only: with 'first' any second reward is one)
local function seen_before()
  if ag ~= 'first' and event ~= '' then
    return redis.call('HSETNX', KEYS[1], 'e:' .. event, '1') == 0
  end
  return false
end

if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  if now_n <= tonumber(deadline) then
    if state == 'c' and (ag == 'first' or seen_before()) then
      redis.call('HINCRBY', KEYS[4], 'duplicate', 1)
      return 'duplicate'
    end
    if state == 'c' then
      local x = tonumber(value)
      if ag == 'sum' then
        x = tonumber(v or '0') + x
      elseif x < tonumber(v or '0') then
        x = tonumber(v or '0')
      end
      redis.call('HSET', KEYS[1], 'v', string.format('%.17g', x))
      return 'recorded'
    end
    seen_before()  -- remember the first event id too
    if h[5] or ARGV[4] ~= '' then  -- keep a graded value (a plain click's is implicitly 1)
      redis.call('HSET', KEYS[1], 's', 'c', 'v', value)
    else
      redis.call('HSET', KEYS[1], 's', 'c')
    end
    redis.call('HINCRBY', KEYS[4], 'clicked', 1)
    if redis.call('EXISTS', KEYS[5]) == 1 then
      redis.call('HINCRBY', KEYS[5], click_field, 1)
    end
    redis.call('HINCRBY', KEYS[6], click_field, 1)
    -- segment counters (service/segments.py): the recorded click, beside the totals' count of it
    if segment_field and segment_field ~= '' then
      redis.call('HINCRBY', KEYS[7], segment_field, 1)
    end
    -- end of segment counters
    -- The click that will make the label 1 at the deadline, for learners with early updates.
    redis.call('XADD', KEYS[8], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[1], 'at', now, 'ev', ev)
    return 'recorded'
  end
  -- Past the deadline but not swept yet: the expiry happens first, then the reward is judged.
  redis.call('ZREM', KEYS[2], ARGV[1])
  local reward = label(state == 'c')
  if state == 'c' then
    redis.call('HSET', KEYS[1], 's', 'C')
  else
    redis.call('HSET', KEYS[1], 's', 'x')
    redis.call('HINCRBY', KEYS[4], 'defaulted', 1)
  end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'id', ARGV[1], 'r', reward, 'at', deadline, 'ev', ev)
  redis.call('HINCRBY', KEYS[4], 'labelled', 1)
  if h[5] then  -- mean reward per artwork, over labelled impressions (keys.reward_sum_field / labels_field)
    local cell = string.sub(click_field, 2)
    redis.call('HINCRBYFLOAT', KEYS[6], 'r' .. cell, reward)
    redis.call('HINCRBY', KEYS[6], 'n' .. cell, 1)
  end
  if state == 'c' then state = 'C' else state = 'x' end
end

-- Labelled already: a further reward is a duplicate if the impression was rewarded under 'first' (or the
-- event id was seen), else late (after the window: counted, never learned).
if ((state == 'C' or state == 'c') and ag == 'first') or seen_before() then
  redis.call('HINCRBY', KEYS[4], 'duplicate', 1)
  return 'duplicate'
end
redis.call('HINCRBY', KEYS[4], 'late', 1)
return 'late'
