-- publish: write a learner snapshot of one title (positions, counters, changed models) in one step,
-- provided the stored stream position is still the one this learner loaded or last wrote. If another
-- learner moved it, nothing is written and the caller reloads: no event is ever applied twice.
--
-- KEYS[1] snapshot hash (keys.snapshot)
-- ARGV[1] expected current value of the 'pos' field ('' when the snapshot has none yet)
-- ARGV[2] number n of fields to delete (removed variants)
-- ARGV[3 .. 2+n] fields to delete
-- ARGV[3+n ..] field, value, field, value, ... to set (must include 'pos')
-- Returns 1 when written, 0 when the position did not match.

local current = redis.call('HGET', KEYS[1], 'pos') or ''
if current ~= ARGV[1] then
  return 0
end
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
local pairs_ = {}
for i = 3 + n, #ARGV do
  pairs_[#pairs_ + 1] = ARGV[i]
end
if #pairs_ > 0 then
  redis.call('HSET', KEYS[1], unpack(pairs_))
end
return 1
