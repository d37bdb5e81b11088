-- cheapai_settle_v2
-- Replaces a request's token reservation with its real count: adds `delta` (real - reserved)
-- to the bucket the reservation went into, and to the running total, if that bucket is
-- still in the window (see window.lua for the hash's layout).
-- KEYS[1] window hash; ARGV: second, delta. Returns the bucket's new value (or -1).
local field = 't:' .. ARGV[1]
local current = redis.call('HGET', KEYS[1], field)
if not current then return -1 end
local value = math.max(0, tonumber(current) + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], field, value)
redis.call('HINCRBY', KEYS[1], 't', value - tonumber(current))
return value
