-- impress: log one decision and open its join entry, atomically, in one round trip.
--
-- KEYS[1] decisions stream        (keys.decisions_stream)
-- KEYS[2] impression hash         (keys.impression)
-- KEYS[3] pending zset            (keys.pending)
-- KEYS[4] join counters hash      (keys.join_counters)
-- KEYS[5] decision-minute counters (keys.minute_counters)
-- KEYS[6] title totals hash       (keys.totals)
-- KEYS[7] variant viewers HLL     (keys.variant_users)
-- KEYS[8] segment counters hash   (keys.segment_counters)
-- ARGV[1] impression id
-- ARGV[2] deadline (epoch seconds, text; decided_at + attribution window)
-- ARGV[3] decision record JSON (the decisions stream entry)
-- ARGV[4] label JSON (copied verbatim into the labelled event)
-- ARGV[5] impressions counter field (keys.impressions_field)
-- ARGV[6] clicks counter field (keys.clicks_field), kept with the impression for the click
-- ARGV[7] approximate MAXLEN of the decisions stream
-- ARGV[8] TTL of the impression hash, seconds (window + retention)
-- ARGV[9] TTL of the minute counters, seconds
-- ARGV[10] user id (counted once per variant in the HyperLogLog)
-- ARGV[11] '1': deferred (logged, not shown until activate.lua or a reward activates it); '' shown now
-- ARGV[12] reward aggregate of the title ('first' | 'sum' | 'max'), or '' for clicks (first, [0, 1])
-- ARGV[13] reward lower bound (text) when ARGV[12] is set
-- ARGV[14] reward upper bound (text) when ARGV[12] is set
-- ARGV[15] segment impressions field (keys.segment_impressions_field), or '' to count no segment
-- ARGV[16] segment clicks field (keys.segment_clicks_field), kept with the impression for the click
-- Returns the decisions stream entry id.
--
-- Impression hash fields: d deadline, ev label JSON, cf clicks field, s state (see click.lua);
-- if the impressions field and si the segment impressions field (deferred only: activation counts
-- them); sf the segment clicks field; ag/lo/hi the reward rule (titles with a `reward` config only);
-- v the reward aggregate and e:<event id> seen events (click.lua).
--
-- A deferred impression is logged (decision record, viewer) but counts nowhere yet: state 'd', no
-- impression counters, and its pending-set score is the *activation* deadline (decided_at + window),
-- after which the sweep (expire.lua) counts it `never_shown` and emits no label.

if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('impression id already used: ' .. ARGV[1])
end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[7], '*', 'json', ARGV[3])
if ARGV[12] ~= '' then
  redis.call('HSET', KEYS[2], 'ag', ARGV[12], 'lo', ARGV[13], 'hi', ARGV[14])
end
redis.call('PFADD', KEYS[7], ARGV[10])
if ARGV[11] == '1' then
  redis.call('HSET', KEYS[2], 'd', ARGV[2], 'ev', ARGV[4], 'cf', ARGV[6], 's', 'd', 'if', ARGV[5],
    'sf', ARGV[16], 'si', ARGV[15])
  redis.call('EXPIRE', KEYS[2], ARGV[8])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
  redis.call('HINCRBY', KEYS[4], 'deferred', 1)
  return entry
end
redis.call('HSET', KEYS[2], 'd', ARGV[2], 'ev', ARGV[4], 'cf', ARGV[6], 's', 'p', 'sf', ARGV[16])
redis.call('EXPIRE', KEYS[2], ARGV[8])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('HINCRBY', KEYS[4], 'impressions', 1)
if redis.call('HINCRBY', KEYS[5], ARGV[5], 1) == 1 then
  redis.call('EXPIRE', KEYS[5], ARGV[9])
end
redis.call('HINCRBY', KEYS[6], ARGV[5], 1)
-- segment counters (service/segments.py): counted exactly where and when the totals above are (for a
-- deferred impression: at activation), so the segments of a variant × artwork always sum to its totals
if ARGV[15] ~= '' then
  redis.call('HINCRBY', KEYS[8], ARGV[15], 1)
end
return entry
